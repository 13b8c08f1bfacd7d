"""The hot path: user state -> encode -> candidates -> ranker -> reasons; trending for users the model cannot serve.

Every list is computed fresh from the user's latest sequence: there is no precomputed per-user list to go
stale. When the serving version has a ranker (and ``serving.ranker`` is on), the transformer is one candidate
source among several live ones (co-occurrence, session-kNN, trending; :mod:`freshrec.candidates`) and the
ranker orders their merged candidates from real-time features (:mod:`freshrec.ranking`); otherwise the
transformer's own ranking is served. :class:`ServingModel` prepares one model version for serving (id
translation, the index, the availability mask); :class:`Recommender` holds exactly one current
``ServingModel`` and swaps it by a single reference assignment, so a request that started on the old
version finishes on it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from freshrec.batching import MicroBatcher
from freshrec.candidates.cooccurrence import CoOccurrence
from freshrec.candidates.sknn import SessionKNN
from freshrec.candidates.trending import TrendingSource
from freshrec.catalog.base import Catalog
from freshrec.config import ContentSettings, ServingSettings
from freshrec.diversity import POOL_PER_SLOT, mmr
from freshrec.errors import InvalidInput, ModelUnavailable, NotFound
from freshrec.model.sasrec import OBJECTIVES
from freshrec.ranking.assemble import Live, rank
from freshrec.ranking.features import ItemStats
from freshrec.rerank import describe, explain_by_sequence
from freshrec.schema import RecommendationList, RecommendedItem, SimilarItems, UserSnapshot
from freshrec.sequence import EventTypes
from freshrec.serving_model import ServingModel
from freshrec.state.base import StateStore
from freshrec.state.preferences import PreferenceStore
from freshrec.state.trending import Trending

#: Trending entries kept ranked beyond max_k, so filtering a user's seen items rarely runs short.
_TRENDING_EXTRA = 1000
#: Seconds the trending ranking (and the exposure counts) are reused before being recomputed.
TRENDING_REFRESH_S = 1.0
#: Newest sequence entries searched for the entry that explains a recommendation.
EXPLAIN_WINDOW = 10


@dataclass
class _Scoring:
    """The model work one request needs (run by the micro-batcher, possibly with other requests)."""

    serving: ServingModel
    user_id: str
    snap: UserSnapshot
    rows: np.ndarray  # the user's sequence as model rows, newest last
    types: np.ndarray
    exclude: np.ndarray  # catalogue indices never to return (seen items)
    k: int
    diversity: float = 0.0  # MMR weight of dissimilarity (0: the model's order)
    objective: str = "engagement"  # what the model ranks for (one it serves)

    @property
    def state_version(self) -> int:
        return self.snap.version


@dataclass
class _Scored:
    """One request's ranked list before it becomes a response."""

    catalog_idx: np.ndarray  # [k]
    scores: np.ndarray  # [k]
    unit: np.ndarray  # [k, D] normalised rows, for reasons
    prefixes: list[str]  # "" or what the item is there for ("new item", "exploration")
    sources: list[list[str]]  # the candidate sources that proposed each item


#: Candidates fetched beyond k so an exploration slot can be filled from the user's own ranking.
_EXPLORATION_POOL = 100


def _model_only(position: int) -> list[str]:
    """The sources of every item of the transformer's own ranking."""
    return ["model"]


class Recommender:
    """Answers recommendation and similar-item requests from live state and the current model.

    Concurrent requests are micro-batched (:mod:`freshrec.batching`); a user's encoded sequence is cached
    until their next event or the next model swap, so repeated requests skip the transformer.
    """

    def __init__(
        self,
        state: StateStore,
        catalog: Catalog,
        trending: Trending,
        types: EventTypes,
        settings: ServingSettings,
        content: ContentSettings | None = None,
        preferences: PreferenceStore | None = None,
        trending_refresh_s: float = TRENDING_REFRESH_S,
    ) -> None:
        self.content_settings = content or ContentSettings()
        self.trending_refresh_s = trending_refresh_s
        self.preferences = preferences
        self._category_cache: tuple[int, dict[str, np.ndarray]] | None = None
        self.state = state
        self.catalog = catalog
        self.trending = trending
        self.types = types
        self.settings = settings
        self.serving: ServingModel | None = None
        self._swap_lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[int, str, torch.Tensor]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._trending_cache: tuple[float, int, np.ndarray, np.ndarray] | None = None
        self._stats_cache: tuple[float, int, ItemStats] | None = None
        # the live sources beside the transformer, in the ranker's source order
        self._sources = [CoOccurrence(state), SessionKNN(state), TrendingSource(self._trending_ranking)]
        self._exposure_cache: tuple[float, int, np.ndarray] | None = None
        self._batcher: MicroBatcher[_Scoring, _Scored] | None = (
            MicroBatcher(self._score_batch, settings.micro_batch) if settings.micro_batch > 1 else None
        )

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()

    def swap(self, serving: ServingModel | None) -> ServingModel | None:
        """Make ``serving`` current; returns the previous one. Requests in flight keep their reference."""
        with self._swap_lock:
            previous, self.serving = self.serving, serving
        return previous

    def forget(self, user_id: str) -> None:
        """Drop anything cached for a user (after their state was deleted)."""
        with self._cache_lock:
            self._cache.pop(user_id, None)

    def check_k(self, k: int) -> None:
        if not 1 <= k <= self.settings.max_k:
            raise InvalidInput(f"k must be between 1 and {self.settings.max_k} (serving.max_k), got {k}")

    # ---- recommendations -------------------------------------------------------------------------

    def recommend(
        self,
        user_id: str,
        k: int | None = None,
        exclude_seen: bool | None = None,
        diversity: float | None = None,
        objective: str | None = None,
    ) -> RecommendationList:
        """Top-k for a user from their live sequence; trending when the model cannot serve them. ``diversity``
        (0..1, default ``serving.diversity``) re-ranks the model's list by MMR (:mod:`freshrec.diversity`);
        ``objective`` (default ``serving.objective``) is what the model ranks for
        (:data:`~freshrec.model.sasrec.OBJECTIVES`)."""
        plan = self._plan(user_id, k, exclude_seen, diversity, objective)
        if isinstance(plan, RecommendationList):
            return plan
        result = self._batcher.submit(plan) if self._batcher is not None else self._score_batch([plan])[0]
        return self._finish(plan, result)

    async def recommend_async(
        self,
        user_id: str,
        k: int | None = None,
        exclude_seen: bool | None = None,
        diversity: float | None = None,
        objective: str | None = None,
    ) -> RecommendationList:
        """:meth:`recommend` for an event loop: the model work runs on the batcher's thread."""
        plan = self._plan(user_id, k, exclude_seen, diversity, objective)
        if isinstance(plan, RecommendationList):
            return plan
        if self._batcher is None:
            return self._finish(plan, self._score_batch([plan])[0])
        return self._finish(plan, await self._batcher.submit_async(plan))

    def trending_list(self, user_id: str, k: int | None = None, exclude_seen: bool | None = None) -> RecommendationList:
        """The trending list for a user (their seen items excluded), whatever the model could do."""
        k = self.settings.default_k if k is None else k
        self.check_k(k)
        exclude_seen = self.settings.exclude_seen if exclude_seen is None else exclude_seen
        return self._trending(user_id, self.state.get(user_id), k, exclude_seen, self.serving)

    def _plan(
        self,
        user_id: str,
        k: int | None,
        exclude_seen: bool | None,
        diversity: float | None = None,
        objective: str | None = None,
    ) -> _Scoring | RecommendationList:
        k = self.settings.default_k if k is None else k
        self.check_k(k)
        diversity = self.settings.diversity if diversity is None else diversity
        if not 0.0 <= diversity <= 1.0:
            raise InvalidInput(f"diversity must be between 0 and 1, got {diversity}")
        objective = self.settings.objective if objective is None else objective
        if objective not in OBJECTIVES:
            raise InvalidInput(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        exclude_seen = self.settings.exclude_seen if exclude_seen is None else exclude_seen
        snap = self.state.get(user_id)
        serving = self.serving  # one read: this request uses this version to the end
        if serving is not None and snap is not None:
            rows = serving.rows(snap.items)
            usable = rows > 0
            if usable.any():
                seen = snap.seen if exclude_seen else np.zeros(0, dtype=np.int64)
                # the ranker's labels are interactions: with it, lists rank for engagement
                ranked = self.settings.ranker and serving.ranker is not None
                served = objective if objective in serving.objectives and not ranked else "engagement"
                return _Scoring(serving, user_id, snap, rows[usable], snap.types[usable], seen, k, diversity, served)
        return self._trending(user_id, snap, k, exclude_seen, serving)

    def _exposure(self) -> np.ndarray:
        """[N + 1] interactions per item (refreshed like the trending ranking)."""
        now = time.monotonic()
        cached = self._exposure_cache
        if cached is None or cached[1] != self.catalog.version or now - cached[0] >= self.trending_refresh_s:
            cached = self._exposure_cache = (now, self.catalog.version, self.trending.counts(len(self.catalog)))
        return cached[2]

    def _score_batch(self, plans: list[_Scoring]) -> list[_Scored]:
        """Encode (cached) and rank a batch of requests, one forward pass per model. With a ranker, each
        user's candidates from every source are merged and ranked; without, the model's own top k (items it
        has no learned row for compete through their content-mapped rows)."""
        results: list[_Scored | None] = [None] * len(plans)
        by_model: dict[int, list[int]] = {}
        for i, plan in enumerate(plans):
            by_model.setdefault(id(plan.serving), []).append(i)
        explore = self.content_settings.exploration_slots
        exposure = self._exposure() if explore else None
        for members in by_model.values():
            serving = plans[members[0]].serving
            queries = self._user_vectors(serving, [plans[i] for i in members])
            exclude = [plans[i].exclude for i in members]
            allowed, available = serving.allowed(self.catalog), self.catalog.available_mask()
            if self.settings.ranker and serving.ranker is not None:
                live = Live(self._sources, self._item_stats(), serving.content, available)
                snaps = [plans[i].snap for i in members]
                lists = rank(serving, serving.ranker, live, queries, snaps, exclude, allowed)
                for (cands, scores), i in zip(lists, members, strict=True):
                    results[i] = self._assemble(
                        plans[i], serving, cands.items, scores, cands.sources_of, exposure, explore
                    )
            else:
                fetch = max(p.k * (POOL_PER_SLOT if p.diversity > 0 else 1) for p in (plans[i] for i in members)) + (
                    _EXPLORATION_POOL if explore else 0
                )
                conversion = [OBJECTIVES[plans[i].objective] for i in members]
                proposals = serving.propose(queries, fetch, exclude, available, allowed, conversion)
                for p, i in zip(proposals, members, strict=True):
                    results[i] = self._assemble(plans[i], serving, p.items, p.scores, _model_only, exposure, explore)
        return results  # type: ignore[return-value]

    def _user_vectors(self, serving: ServingModel, plans: list[_Scoring]) -> torch.Tensor:
        """[B, D] the plans' user vectors: cached ones reused, the others encoded in one forward pass."""
        users = [self._cached_vector(plan) for plan in plans]
        missing = [j for j, u in enumerate(users) if u is None]
        if missing:
            fresh = serving.encode([plans[j].rows for j in missing], [plans[j].types for j in missing])
            for j, vector in zip(missing, fresh, strict=True):
                users[j] = vector
                self._remember(plans[j], vector)
        return torch.stack(users)  # type: ignore[arg-type]

    def _item_stats(self) -> ItemStats:
        """Popularity statistics for the ranker's features, refreshed like the trending ranking."""
        now = time.monotonic()
        cached = self._stats_cache
        if cached is None or cached[1] != self.catalog.version or now - cached[0] >= self.trending_refresh_s:
            cached = self._stats_cache = (now, self.catalog.version, ItemStats.of(self.trending, len(self.catalog)))
        return cached[2]

    def _assemble(
        self,
        plan: _Scoring,
        serving: ServingModel,
        cat: np.ndarray,
        sc: np.ndarray,
        sources_of: Callable[[int], list[str]],
        exposure: np.ndarray | None,
        explore: int,
    ) -> _Scored:
        """The top k of a ranked candidate list (re-ranked by MMR among the best ``POOL_PER_SLOT * k`` when
        the request asks for diversity), with the last ``explore`` slots going to the best-ranked
        little-exposed items below the cut (when there are any)."""
        k = plan.k
        position = np.arange(len(cat))
        if plan.diversity > 0 and len(cat) > 1:
            pool = min(len(cat), POOL_PER_SLOT * k)
            picked = mmr(sc[:pool], serving.unit_of(cat[:pool]), k, plan.diversity)
            position = np.concatenate([picked, np.setdiff1d(position, picked, assume_unique=True)])
            cat, sc = cat[position], sc[position]
        is_cold = ~serving.learned(cat)
        prefixes = ["matched by content (no learned embedding yet)" if c else "" for c in is_cold]
        slots = min(explore, k - 1) if exposure is not None else 0
        if slots <= 0 or len(cat) <= k - slots:
            take = np.arange(min(k, len(cat)))
        else:
            head = np.arange(k - slots)
            rest = np.arange(k - slots, len(cat))
            counts = np.where(cat[rest] < len(exposure), exposure[np.minimum(cat[rest], len(exposure) - 1)], 0)
            low = rest[counts <= self.content_settings.exploration_max_interactions][:slots]
            fill = rest[~np.isin(rest, low)][: slots - len(low)]
            take = np.concatenate([head, fill, low])  # explored items take the last slots
            for t in low:
                prefixes[t] = "exploration slot, a little-seen item" + (" matched by content" if is_cold[t] else "")
        return _Scored(
            cat[take],
            sc[take],
            serving.unit_of(cat[take]),
            [prefixes[t] for t in take],
            [sources_of(int(position[t])) for t in take],
        )

    def _cached_vector(self, plan: _Scoring) -> torch.Tensor | None:
        with self._cache_lock:
            hit = self._cache.get(plan.user_id)
            if hit is not None and hit[0] == plan.state_version and hit[1] == plan.serving.version:
                self._cache.move_to_end(plan.user_id)
                return hit[2]
        return None

    def _remember(self, plan: _Scoring, vector: torch.Tensor) -> None:
        if self.settings.user_cache_size <= 0:
            return
        with self._cache_lock:
            self._cache[plan.user_id] = (plan.state_version, plan.serving.version, vector)
            self._cache.move_to_end(plan.user_id)
            while len(self._cache) > self.settings.user_cache_size:
                self._cache.popitem(last=False)

    def _finish(self, plan: _Scoring, scored: _Scored) -> RecommendationList:
        serving, window = plan.serving, EXPLAIN_WINDOW
        recent = plan.rows[-window:]
        recent_types = [self.types.name(int(c)) for c in plan.types[-window:]]
        labels = [
            describe(self.catalog.external_id(int(i)), self.catalog.title(int(i)))
            for i in serving.catalog_of_row[recent]
        ]
        reasons = explain_by_sequence(scored.unit, serving.unit_rows(recent), recent_types, labels, scored.prefixes)
        return RecommendationList(
            user_id=plan.user_id,
            source="model",
            model_version=serving.version,
            sequence_length=min(len(plan.rows), serving.max_len),
            objective=plan.objective,
            items=[
                RecommendedItem(
                    item_id=self.catalog.external_id(int(i)),
                    score=float(s),
                    reason=r,
                    title=self.catalog.title(int(i)),
                    sources=src,
                )
                for i, s, r, src in zip(scored.catalog_idx, scored.scores, reasons, scored.sources, strict=True)
            ],
        )

    # ---- trending --------------------------------------------------------------------------------

    def _trending_ranking(self) -> tuple[np.ndarray, np.ndarray]:
        """Available items by decayed popularity (top max_k + extra), recomputed at most every
        ``trending_refresh_s`` seconds or when the catalogue changes."""
        now = time.monotonic()
        cached = self._trending_cache
        if cached is not None and cached[1] == self.catalog.version and now - cached[0] < self.trending_refresh_s:
            return cached[2], cached[3]
        n = len(self.catalog)
        scores = self.trending.scores(n)
        scores[~self.catalog.available_mask()] = -np.inf
        m = min(n, self.settings.max_k + _TRENDING_EXTRA)
        top = np.argpartition(-scores, m - 1)[:m] if m else np.zeros(0, dtype=np.int64)
        top = top[np.lexsort((top, -scores[top]))]  # by score, ties by index
        top = top[np.isfinite(scores[top])]
        self._trending_cache = (now, self.catalog.version, top, scores[top])
        return top, scores[top]

    def category_items(self) -> dict[str, np.ndarray]:
        """Category -> catalogue indices, rebuilt when the catalogue changes."""
        cached = self._category_cache
        if cached is None or cached[0] != self.catalog.version:
            members: dict[str, list[int]] = {}
            for idx in range(1, len(self.catalog) + 1):
                for c in self.catalog.categories(idx):
                    members.setdefault(c, []).append(idx)
            cached = self._category_cache = (
                self.catalog.version,
                {c: np.asarray(v, dtype=np.int64) for c, v in members.items()},
            )
        return cached[1]

    def _trending(
        self, user_id: str, snap: UserSnapshot | None, k: int, exclude_seen: bool, serving: ServingModel | None
    ) -> RecommendationList:
        order, scores = self._trending_ranking()
        reasons = ["trending"] * len(order)
        source = "trending"
        picked = self.preferences.get(user_id) if self.preferences is not None else None
        if picked:
            # Onboarding: the user's chosen categories first, by trending score; then everything else.
            by_cat = self.category_items()
            chosen = [c for c in picked if c in by_cat]
            if chosen:
                members = np.unique(np.concatenate([by_cat[c] for c in chosen]))
                members = members[self.catalog.available_mask()[members]]
                all_scores = self.trending.scores(len(self.catalog))
                members = members[np.lexsort((members, -all_scores[members]))]
                rest = ~np.isin(order, members)
                order = np.concatenate([members, order[rest]])
                scores = np.concatenate([all_scores[members], scores[rest]])
                reasons = [
                    f"popular in {next(c for c in self.catalog.categories(int(i)) if c in chosen)} (you chose it)"
                    for i in members[: k + len(snap.seen if snap is not None else ())]
                ]
                reasons += ["popular in your categories"] * (len(members) - len(reasons))
                reasons += ["trending"] * int(rest.sum())
                source = "onboarding"
        if exclude_seen and snap is not None and len(snap.seen):
            keep = ~np.isin(order, snap.seen)
            order, scores = order[keep], scores[keep]
            reasons = [r for r, kept in zip(reasons, keep, strict=True) if kept]
        return RecommendationList(
            user_id=user_id,
            source=source,
            model_version=serving.version if serving is not None else None,
            sequence_length=0,
            items=[
                RecommendedItem(
                    item_id=self.catalog.external_id(int(i)),
                    score=float(s),
                    reason=r,
                    title=self.catalog.title(int(i)),
                )
                for i, s, r in zip(order[:k], scores[:k], reasons[:k], strict=True)
            ],
        )

    # ---- similar items ---------------------------------------------------------------------------

    def similar(self, item_id: str, k: int | None = None) -> SimilarItems:
        """Nearest items to ``item_id`` by cosine similarity of the model's item embeddings."""
        k = self.settings.default_k if k is None else k
        self.check_k(k)
        serving = self.serving
        if serving is None:
            raise ModelUnavailable("no model loaded; train one with `freshrec train`")
        idx = self.catalog.internal_id(item_id, create=False)
        row = int(serving.rows(np.array([idx]))[0]) if idx else 0
        cold = serving.cold
        at = np.flatnonzero(cold.catalog_idx == idx) if idx and not row else np.zeros(0, dtype=np.int64)
        if row:
            query = torch.from_numpy(serving.unit_rows(np.array([row]))[0])
        elif len(at):  # a new item known only by its content: its mapped row stands in
            query = torch.from_numpy(cold.unit[at[0]])
        else:
            raise NotFound(f"item {item_id!r} is unknown to model {serving.version} and has no content")
        scores = serving.cosine(query)
        allowed = serving.allowed(self.catalog).clone()
        allowed[row] = False
        scores = scores.masked_fill(~allowed, float("-inf"))
        top = torch.topk(scores, min(k, serving.num_rows))
        label = describe(item_id, self.catalog.title(idx))
        items = []
        for r, s in zip(top.indices.tolist(), top.values.tolist(), strict=True):
            if not np.isfinite(s):
                continue
            cat = int(serving.catalog_of_row[r])
            items.append(
                RecommendedItem(
                    item_id=self.catalog.external_id(cat),
                    score=float(s),
                    reason=f"similar to {label}",
                    title=self.catalog.title(cat),
                )
            )
        return SimilarItems(item_id=item_id, model_version=serving.version, items=items)

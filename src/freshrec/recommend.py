"""The hot path: user state -> encode -> index.topk -> reasons; trending for users the model cannot serve.

Every list is computed fresh from the user's latest sequence: there is no precomputed per-user list to go
stale. :class:`ServingModel` prepares one model version for serving (id translation, the index, the
availability mask); :class:`Recommender` holds exactly one current ``ServingModel`` and swaps it by a
single reference assignment, so a request that started on the old version finishes on it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from freshrec.batching import MicroBatcher
from freshrec.catalog.base import Catalog
from freshrec.config import ServingSettings
from freshrec.errors import InvalidInput, ModelUnavailable, NotFound
from freshrec.rerank import describe, explain_by_sequence
from freshrec.schema import RecommendationList, RecommendedItem, SimilarItems
from freshrec.sequence import EventTypes
from freshrec.serving_model import ServingModel
from freshrec.state.base import StateStore, UserSnapshot
from freshrec.state.trending import Trending

#: Trending entries kept ranked beyond max_k, so filtering a user's seen items rarely runs short.
_TRENDING_EXTRA = 1000


@dataclass
class _Scoring:
    """The model work one request needs (run by the micro-batcher, possibly with other requests)."""

    serving: ServingModel
    user_id: str
    state_version: int
    rows: np.ndarray  # the user's sequence as model rows, newest last
    types: np.ndarray
    exclude: np.ndarray  # model rows never to return (seen items)
    k: int


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
    ) -> None:
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
        self._batcher: MicroBatcher[_Scoring, tuple[np.ndarray, np.ndarray]] | None = (
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

    def recommend(self, user_id: str, k: int | None = None, exclude_seen: bool | None = None) -> RecommendationList:
        """Top-k for a user from their live sequence; trending when the model cannot serve them."""
        plan = self._plan(user_id, k, exclude_seen)
        if isinstance(plan, RecommendationList):
            return plan
        result = self._batcher.submit(plan) if self._batcher is not None else self._score_batch([plan])[0]
        return self._finish(plan, *result)

    async def recommend_async(
        self, user_id: str, k: int | None = None, exclude_seen: bool | None = None
    ) -> RecommendationList:
        """:meth:`recommend` for an event loop: the model work runs on the batcher's thread."""
        plan = self._plan(user_id, k, exclude_seen)
        if isinstance(plan, RecommendationList):
            return plan
        if self._batcher is None:
            return self._finish(plan, *self._score_batch([plan])[0])
        return self._finish(plan, *await self._batcher.submit_async(plan))

    def trending_list(self, user_id: str, k: int | None = None, exclude_seen: bool | None = None) -> RecommendationList:
        """The trending list for a user (their seen items excluded), whatever the model could do."""
        k = self.settings.default_k if k is None else k
        self.check_k(k)
        exclude_seen = self.settings.exclude_seen if exclude_seen is None else exclude_seen
        return self._trending(user_id, self.state.get(user_id), k, exclude_seen, self.serving)

    def _plan(self, user_id: str, k: int | None, exclude_seen: bool | None) -> _Scoring | RecommendationList:
        k = self.settings.default_k if k is None else k
        self.check_k(k)
        exclude_seen = self.settings.exclude_seen if exclude_seen is None else exclude_seen
        snap = self.state.get(user_id)
        serving = self.serving  # one read: this request uses this version to the end
        if serving is not None and snap is not None:
            rows = serving.rows(snap.items)
            usable = rows > 0
            if usable.any():
                exclude = serving.rows(snap.seen) if exclude_seen else np.zeros(0, dtype=np.int64)
                return _Scoring(serving, user_id, snap.version, rows[usable], snap.types[usable], exclude, k)
        return self._trending(user_id, snap, k, exclude_seen, serving)

    def _score_batch(self, plans: list[_Scoring]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Encode (cached) and rank a batch of requests: one forward pass and one index search per model."""
        results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(plans)
        by_model: dict[int, list[int]] = {}
        for i, plan in enumerate(plans):
            by_model.setdefault(id(plan.serving), []).append(i)
        for members in by_model.values():
            serving = plans[members[0]].serving
            users = [self._cached_vector(plans[i]) for i in members]
            missing = [j for j, u in enumerate(users) if u is None]
            if missing:
                fresh = serving.encode(
                    [plans[members[j]].rows for j in missing], [plans[members[j]].types for j in missing]
                )
                for j, vector in zip(missing, fresh, strict=True):
                    users[j] = vector
                    self._remember(plans[members[j]], vector)
            k = max(plans[i].k for i in members)
            ids, scores = serving.index.topk(
                torch.stack(users),
                k,  # type: ignore[arg-type]
                exclude=[plans[i].exclude for i in members],
                allowed=serving.allowed(self.catalog),
            )
            for j, i in enumerate(members):
                keep = np.isfinite(scores[j][: plans[i].k])
                results[i] = (ids[j][: plans[i].k][keep], scores[j][: plans[i].k][keep])
        return results  # type: ignore[return-value]

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

    def _finish(self, plan: _Scoring, rec_rows: np.ndarray, rec_scores: np.ndarray) -> RecommendationList:
        serving, window = plan.serving, self.settings.explain_window
        recent = plan.rows[-window:]
        recent_types = [self.types.name(int(c)) for c in plan.types[-window:]]
        labels = [
            describe(self.catalog.external_id(int(i)), self.catalog.title(int(i)))
            for i in serving.catalog_of_row[recent]
        ]
        reasons = explain_by_sequence(rec_rows, recent, recent_types, labels, serving.unit_np)
        cat_idx = serving.catalog_of_row[rec_rows]
        return RecommendationList(
            user_id=plan.user_id,
            source="model",
            model_version=serving.version,
            sequence_length=min(len(plan.rows), serving.max_len),
            items=[
                RecommendedItem(
                    item_id=self.catalog.external_id(int(i)), score=float(s), reason=r, title=self.catalog.title(int(i))
                )
                for i, s, r in zip(cat_idx, rec_scores, reasons, strict=True)
            ],
        )

    # ---- trending --------------------------------------------------------------------------------

    def _trending_ranking(self) -> tuple[np.ndarray, np.ndarray]:
        """Available items by decayed popularity (top max_k + extra), recomputed at most every
        ``serving.trending_refresh_s`` seconds or when the catalogue changes."""
        now = time.monotonic()
        cached = self._trending_cache
        if (
            cached is not None
            and cached[1] == self.catalog.version
            and now - cached[0] < self.settings.trending_refresh_s
        ):
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

    def _trending(
        self, user_id: str, snap: UserSnapshot | None, k: int, exclude_seen: bool, serving: ServingModel | None
    ) -> RecommendationList:
        order, scores = self._trending_ranking()
        if exclude_seen and snap is not None and len(snap.seen):
            keep = ~np.isin(order, snap.seen)
            order, scores = order[keep], scores[keep]
        return RecommendationList(
            user_id=user_id,
            source="trending",
            model_version=serving.version if serving is not None else None,
            sequence_length=0,
            items=[
                RecommendedItem(
                    item_id=self.catalog.external_id(int(i)),
                    score=float(s),
                    reason="trending",
                    title=self.catalog.title(int(i)),
                )
                for i, s in zip(order[:k], scores[:k], strict=True)
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
        if not row:
            raise NotFound(f"item {item_id!r} is unknown to model {serving.version}")
        query = serving.unit[row][None, :]
        scores = (query @ serving.unit.T)[0]
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

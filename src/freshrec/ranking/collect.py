"""Ranker requests from the log: replay it in order through fresh live state, and at each event to predict,
take the candidates and features the live sources give just before it, the chosen item labelled 1.

The live state here is rebuilt by the same components serving uses (:class:`~freshrec.state.memory.MemoryStateStore`
with its item graph, :class:`~freshrec.state.trending.Trending`), so a request's features are what serving
would have computed at that moment. Which events are predicted is the caller's choice: events the model
did not train on (the leave-one-out holdouts), so its scores are not memorised ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from freshrec.candidates.cooccurrence import CoOccurrence
from freshrec.candidates.sknn import SessionKNN
from freshrec.candidates.trending import TrendingSource
from freshrec.events.base import iter_pages
from freshrec.ranking.assemble import Live, gather
from freshrec.ranking.candidates import CandidateSet
from freshrec.ranking.features import POPULARITY_HALF_LIVES, ItemStats
from freshrec.sequence import Sequences, UserSequence
from freshrec.serving_model import ServingModel
from freshrec.state.memory import MemoryStateStore
from freshrec.state.trending import Trending
from freshrec.stores import Stores

#: Trending entries ranked per request (as serving keeps a head of the ranking).
TRENDING_HEAD = 1000


@dataclass
class Requests:
    """Ranker training data: features ``x`` [R, F], labels ``y`` [R], candidates per request ``groups``, in
    request order; ``targets``: the chosen item's position among each request's candidates (-1: not among
    them), for every request asked, kept or not."""

    x: np.ndarray
    y: np.ndarray
    groups: list[int]
    targets: list[int] = field(default_factory=list)
    candidates: list[CandidateSet] = field(default_factory=list)

    @property
    def recall(self) -> float:
        """Share of requests whose chosen item was among the candidates."""
        return float(np.mean([t >= 0 for t in self.targets])) if self.targets else 0.0


def live_state(stores: Stores) -> tuple[MemoryStateStore, Trending]:
    """Empty live state as the engine keeps it, with the popularity half-lives the ranker reads."""
    s = stores.settings
    state = MemoryStateStore(stores.types, s.state.max_sequence_length, s.state.collapse_repeats)
    return state, Trending(s.state.trending_half_life_hours * 3600.0, POPULARITY_HALF_LIVES)


def trending_head(trending: Trending, available: Callable[[], np.ndarray], n: int = TRENDING_HEAD):
    """A trending ranking callable (available items, best first) for :class:`TrendingSource`."""

    def ranking() -> tuple[np.ndarray, np.ndarray]:
        mask = available()
        scores = trending.scores(len(mask) - 1)
        scores[~mask] = -np.inf
        m = min(n, len(scores))
        top = np.argpartition(-scores, m - 1)[:m] if m else np.zeros(0, dtype=np.int64)
        top = top[np.lexsort((top, -scores[top]))]
        top = top[np.isfinite(scores[top]) & (scores[top] > 0)]
        return top, scores[top]

    return ranking


def collect(
    stores: Stores,
    serving: ServingModel,
    targets: Mapping[str, int],
    upto_offset: int | None = None,
    progress: bool = False,
) -> Requests:
    """Requests for the events that add entry ``targets[user]`` (0-based) to each user's full sequence.

    Every event up to ``upto_offset`` is folded into fresh live state in log order; just before each target
    event, the user's candidates and their features are gathered (:func:`~freshrec.ranking.assemble.gather`)
    with ``serving`` as the model. Requests whose chosen item is not among the candidates are asked but not
    kept (nothing to learn from them).
    """
    state, trending = live_state(stores)
    catalog = stores.catalog
    live_sources = [
        CoOccurrence(state),
        SessionKNN(state),
        TrendingSource(trending_head(trending, catalog.available_mask)),
    ]
    counter = Sequences(stores.types, None, stores.settings.state.collapse_repeats)
    negative = stores.types.negative
    xs, ys, groups, found, kept = [], [], [], [], []
    last = stores.event_log.last_offset() if upto_offset is None else upto_offset
    bar = tqdm(total=len(targets), desc="ranker requests", unit="req", disable=not progress, leave=False)
    for page in iter_pages(stores.event_log, upto_offset=last):
        idx = catalog.internal_ids([e.item_id for e in page], create=True)
        before: dict[int, int] = {}

        def count(j: int, seq: UserSequence | None, entries: dict[int, int] = before) -> None:
            entries[j] = len(seq) if seq is not None else 0

        added = counter.fold(page, idx, count)
        queries = [j for j in added if page[j].type not in negative and targets.get(page[j].user_id) == before[j]]
        start = 0
        for j in queries:
            _apply(state, trending, page[start:j], idx[start:j], negative)
            start = j
            snap = state.get(page[j].user_id)
            rows = serving.rows(snap.items) if snap is not None else np.zeros(0, dtype=np.int64)
            if snap is None or not (rows > 0).any():
                found.append(-1)
                bar.update()
                continue
            users = serving.encode([rows[rows > 0]], [snap.types[rows > 0]])
            live = Live(live_sources, ItemStats.of(trending, len(catalog)), stores.content, catalog.available_mask())
            [(cands, x)] = gather(serving, live, users, [snap], [snap.seen])
            hit = np.flatnonzero(cands.items == idx[j])
            found.append(int(hit[0]) if len(hit) else -1)
            if len(hit):
                xs.append(x)
                ys.append((cands.items == idx[j]).astype(np.float32))
                groups.append(len(cands))
                kept.append(cands)
            bar.update()
        _apply(state, trending, page[start:], idx[start:], negative)
    bar.close()
    width = len(xs[0][0]) if xs else 0
    return Requests(
        np.concatenate(xs) if xs else np.zeros((0, width), dtype=np.float32),
        np.concatenate(ys) if ys else np.zeros(0, dtype=np.float32),
        groups,
        found,
        kept,
    )


def _apply(state: MemoryStateStore, trending: Trending, events, idx, negative) -> None:
    if not len(events):
        return
    state.apply(events, idx)
    positive = [(i, e.ts) for i, e in zip(idx, events, strict=True) if e.type not in negative]
    if positive:
        items, ts = zip(*positive, strict=True)
        trending.add(items, ts)

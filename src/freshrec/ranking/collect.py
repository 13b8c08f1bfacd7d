"""Ranker requests from the log: replay it in order through fresh live state, and at each event to predict,
take the candidates and features the live sources give just before it, the chosen item labelled 1.

The live state here is rebuilt by the same components serving uses (:class:`~freshrec.state.memory.MemoryStateStore`
with its item graph, :class:`~freshrec.state.trending.Trending`), so a request's features are what serving
would have computed at that moment. Which events are predicted is the caller's choice: events the model
did not train on (the leave-one-out holdouts), so its scores are not memorised ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from freshrec.candidates.cooccurrence import CoOccurrence
from freshrec.candidates.sknn import SessionKNN
from freshrec.candidates.trending import TrendingSource
from freshrec.events.base import iter_pages
from freshrec.ranking.assemble import Live, gather
from freshrec.ranking.candidates import CandidateSet
from freshrec.ranking.features import FEATURES, POPULARITY_HALF_LIVES, ItemStats
from freshrec.schema import EventRecord
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


class RequestCollector:
    """Live state folded event by event, as serving keeps it, and the ranker's request for chosen events.

    :meth:`feed` applies events in log order; for the positions asked, it first gathers the user's candidates
    and their features from the state just before that event (never after it).

    Example
    -------
    >>> collector = RequestCollector(stores)                    # doctest: +SKIP
    >>> found = collector.feed(serving, page, idx, queries=[3, 7])  # doctest: +SKIP
    """

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.state, self.trending = live_state(stores)
        self.sources = [
            CoOccurrence(self.state),
            SessionKNN(self.state),
            TrendingSource(trending_head(self.trending, stores.catalog.available_mask)),
        ]
        self.negative = stores.types.negative

    def feed(
        self,
        serving: ServingModel | None,
        events: Sequence[EventRecord],
        idx: Sequence[int],
        queries: Sequence[int] = (),
    ) -> list[Request]:
        """Apply ``events`` (catalogue indices ``idx``); for each position in ``queries`` (ascending), the request
        as of just before that event, with ``serving`` as the model (needed only when there are queries)."""
        if queries and serving is None:
            raise ValueError("requests need a model to gather candidates with")
        out = []
        start = 0
        for j in queries:
            self._apply(events[start:j], idx[start:j])
            start = j
            out.append(self.request(serving, events[j].user_id, int(idx[j])))  # type: ignore[arg-type]
        self._apply(events[start:], idx[start:])
        return out

    def request(self, serving: ServingModel, user_id: str, item: int) -> Request:
        """The user's candidates and features now, and where ``item`` is among them (-1: not a candidate)."""
        snap = self.state.get(user_id)
        rows = serving.rows(snap.items) if snap is not None else np.zeros(0, dtype=np.int64)
        if snap is None or not (rows > 0).any():
            return Request(user_id, None, None, -1)
        users = serving.encode([rows[rows > 0]], [snap.types[rows > 0]])
        catalog = self.stores.catalog
        stats = ItemStats.of(self.trending, len(catalog))
        live = Live(self.sources, stats, self.stores.content, catalog.available_mask())
        [(cands, x)] = gather(serving, live, users, [snap], [snap.seen])
        hit = np.flatnonzero(cands.items == item)
        return Request(user_id, cands, x, int(hit[0]) if len(hit) else -1)

    def _apply(self, events: Sequence[EventRecord], idx: Sequence[int]) -> None:
        if not len(events):
            return
        self.state.apply(events, idx)
        self.trending.add_events(events, idx, self.negative)


@dataclass
class Request:
    """One predicted event: whose, its candidates, their features [C, F], the chosen item's position (-1:
    not a candidate)."""

    user_id: str
    candidates: CandidateSet | None
    x: np.ndarray | None
    target: int

    @property
    def labels(self) -> np.ndarray:
        assert self.candidates is not None
        return (np.arange(len(self.candidates)) == self.target).astype(np.float32)


def collect(
    stores: Stores,
    serving: ServingModel,
    targets: Mapping[str, int],
    upto: Sequence[int] | None = None,
    progress: bool = False,
) -> Requests:
    """Requests for the events that add entry ``targets[user]`` (0-based) to each user's full sequence.

    Every event up to cursor ``upto`` (default: the log's end) is folded into fresh live state in log order
    (:class:`RequestCollector`);
    just before each target event, the user's candidates and their features are gathered
    (:func:`~freshrec.ranking.assemble.gather`) with ``serving`` as the model. Requests whose chosen item is
    not among the candidates are asked but not kept (nothing to learn from them).
    """
    collector = RequestCollector(stores)
    counter = Sequences(stores.types, None, stores.settings.state.collapse_repeats)
    negative = stores.types.negative
    asked: list[Request] = []
    bar = tqdm(total=len(targets), desc="ranker requests", unit="req", disable=not progress, leave=False)
    for page in iter_pages(stores.event_log, upto=upto if upto is not None else stores.event_log.ends()):
        idx = stores.catalog.internal_ids([e.item_id for e in page], create=True)
        before: dict[int, int] = {}

        def count(j: int, seq: UserSequence | None, entries: dict[int, int] = before) -> None:
            entries[j] = len(seq) if seq is not None else 0

        added = counter.fold(page, idx, count)
        queries = [j for j in added if page[j].type not in negative and targets.get(page[j].user_id) == before[j]]
        found = collector.feed(serving, page, idx, queries)
        asked += found
        bar.update(len(found))
    bar.close()
    return requests_of(asked)


def requests_of(asked: Sequence[Request]) -> Requests:
    """Ranker training data from requests asked (those whose chosen item was a candidate are kept)."""
    kept = [r for r in asked if r.target >= 0]
    width = len(FEATURES)
    return Requests(
        np.concatenate([r.x for r in kept]) if kept else np.zeros((0, width), dtype=np.float32),
        np.concatenate([r.labels for r in kept]) if kept else np.zeros(0, dtype=np.float32),
        [len(r.candidates) for r in kept],
        [r.target for r in asked],
        [r.candidates for r in kept],
    )

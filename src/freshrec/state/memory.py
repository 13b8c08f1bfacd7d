"""In-process state store: :class:`~freshrec.sequence.Sequences` and the live
:class:`~freshrec.state.graph.ItemGraph`, guarded by one lock."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from freshrec.position import Cursor, base, partition_of
from freshrec.schema import EventRecord, UserSnapshot
from freshrec.sequence import EventTypes, Sequences, UserSequence
from freshrec.state.graph import ItemGraph


class MemoryStateStore:
    """Live user sequences in memory. See :class:`freshrec.state.base.StateStore`.

    Example
    -------
    >>> from freshrec.schema import EventRecord
    >>> store = MemoryStateStore(EventTypes(["view", "skip"], negative=["skip"]), max_len=10)
    >>> store.apply([EventRecord(1, "u", "a", "view", 1.0), EventRecord(2, "u", "b", "skip", 2.0)], [1, 2])
    [0, 1]
    >>> snap = store.get("u")
    >>> snap.items.tolist(), snap.seen.tolist(), store.applied()
    ([1], [1, 2], (2,))
    """

    def __init__(
        self, types: EventTypes, max_len: int = 200, collapse_repeats: bool = True, item_graph: bool = True
    ) -> None:
        self._applied: dict[int, int] = {}  # partition -> highest offset applied
        #: Only this process reads and writes it.
        self.shared = False
        self._sequences = Sequences(types, max_len, collapse_repeats)
        # The graph's counts grow with the number of item pairs seen together: kept only when asked for
        self._graph = ItemGraph() if item_graph else None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sequences)

    def get(self, user_id: str) -> UserSnapshot | None:
        with self._lock:
            seq = self._sequences.get(user_id)
            return seq.snapshot(user_id) if seq is not None else None

    def apply(self, events: Sequence[EventRecord], item_idx: Sequence[int]) -> list[int]:
        graph = self._graph
        previous: dict[int, list[int]] = {}

        def before(j: int, seq: UserSequence | None) -> None:
            previous[j] = seq.items[-graph.window :].tolist() if seq is not None else []

        with self._lock:
            added = self._sequences.fold(events, item_idx, before if graph is not None else None)
            if graph is not None:
                for j in added:
                    graph.add(events[j].user_id, int(item_idx[j]), previous[j])
            for e in events:
                self._advance(e.offset)
        return list(range(len(events)))

    def _advance(self, offset: int) -> None:
        p = partition_of(offset)
        if offset > self._applied.get(p, 0):
            self._applied[p] = offset

    def applied(self, partitions: int = 1) -> Cursor:
        with self._lock:
            return tuple(self._applied.get(p, base(p)) for p in range(partitions))

    def skip_to(self, offset: int) -> None:
        with self._lock:
            self._advance(offset)

    def get_many(self, user_ids: Sequence[str]) -> list[UserSnapshot | None]:
        return [self.get(u) for u in user_ids]

    def sequences(self, user_ids: Sequence[str]) -> list[np.ndarray | None]:
        with self._lock:
            out = []
            for user in user_ids:
                seq = self._sequences.get(user)
                out.append(seq.item_array() if seq is not None else None)
            return out

    def followers(self, items: Sequence[int]) -> list[dict[int, float]]:
        if self._graph is None:
            return [{} for _ in items]
        with self._lock:
            return self._graph.followers(items)

    def recent_users(self, items: Sequence[int], limit: int) -> list[list[str]]:
        if self._graph is None:
            return [[] for _ in items]
        with self._lock:
            return self._graph.recent_users(items, limit)

    def user_ids(self) -> list[str]:
        with self._lock:
            return list(self._sequences)

    def delete(self, user_id: str) -> None:
        with self._lock:
            seq = self._sequences.pop(user_id)
            if seq is not None and self._graph is not None:
                self._graph.forget(user_id, seq.seen_list())

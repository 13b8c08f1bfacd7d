"""In-process state store: :class:`~freshrec.sequence.Sequences` guarded by one lock."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from freshrec.schema import EventRecord, UserSnapshot
from freshrec.sequence import EventTypes, Sequences


class MemoryStateStore:
    """Live user sequences in memory. See :class:`freshrec.state.base.StateStore`.

    Example
    -------
    >>> from freshrec.schema import EventRecord
    >>> store = MemoryStateStore(EventTypes(["view", "skip"], negative=["skip"]), max_len=10)
    >>> store.apply([EventRecord(1, "u", "a", "view", 1.0), EventRecord(2, "u", "b", "skip", 2.0)], [1, 2])
    >>> snap = store.get("u")
    >>> snap.items.tolist(), snap.seen.tolist(), store.applied_offset
    ([1], [1, 2], 2)
    """

    def __init__(self, types: EventTypes, max_len: int = 200, collapse_repeats: bool = True) -> None:
        self.applied_offset = 0
        self._sequences = Sequences(types, max_len, collapse_repeats)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sequences)

    def get(self, user_id: str) -> UserSnapshot | None:
        with self._lock:
            seq = self._sequences.get(user_id)
            if seq is None:
                return None
            return UserSnapshot(
                items=seq.item_array(),
                types=seq.type_array(),
                ts=seq.ts_array(),
                seen=seq.seen_array(),
                version=seq.version,
            )

    def apply(self, events: Sequence[EventRecord], item_idx: Sequence[int]) -> None:
        with self._lock:
            self._sequences.fold(events, item_idx)
            if events:
                self.applied_offset = max(self.applied_offset, max(e.offset for e in events))

    def user_ids(self) -> list[str]:
        with self._lock:
            return list(self._sequences)

    def delete(self, user_id: str) -> None:
        with self._lock:
            self._sequences.pop(user_id)

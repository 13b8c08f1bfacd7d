"""In-process state store: a dict of :class:`~freshrec.sequence.UserSequence`, guarded by one lock."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from freshrec.schema import EventRecord
from freshrec.sequence import EventTypes, UserSequence
from freshrec.state.base import UserSnapshot


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
        self.types = types
        self.max_len = max_len
        self.collapse_repeats = collapse_repeats
        self.applied_offset = 0
        self._users: dict[str, UserSequence] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._users)

    def get(self, user_id: str) -> UserSnapshot | None:
        with self._lock:
            seq = self._users.get(user_id)
            if seq is None:
                return None
            return UserSnapshot(
                items=seq.item_array(),
                types=seq.type_array(),
                ts=np.frombuffer(seq.ts, dtype=np.float64).copy(),
                seen=seq.seen_array(),
                version=seq.version,
            )

    def apply(self, events: Sequence[EventRecord], item_idx: Sequence[int]) -> None:
        code, negative = self.types.code, self.types.negative
        with self._lock:
            for e, idx in zip(events, item_idx, strict=True):
                seq = self._users.get(e.user_id)
                if seq is None:
                    seq = self._users[e.user_id] = UserSequence(self.max_len, self.collapse_repeats)
                seq.add(idx, code[e.type], e.ts, e.type in negative)
                if e.offset > self.applied_offset:
                    self.applied_offset = e.offset

    def user_ids(self) -> list[str]:
        with self._lock:
            return list(self._users)

    def delete(self, user_id: str) -> None:
        with self._lock:
            self._users.pop(user_id, None)

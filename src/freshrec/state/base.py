"""StateStore: every user's live sequence, updated by each event before the event is acknowledged.

The in-memory backend is rebuilt from the event log on start; the log stays the source of truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from freshrec.position import Cursor
from freshrec.schema import EventRecord, UserSnapshot
from freshrec.storage_url import connect_redis, split_url


@runtime_checkable
class StateStore(Protocol):
    """Guarantees: after ``apply`` returns, ``get`` reflects those events; events are applied in the
    order given (the event log's offset order within each partition); :meth:`applied` is how far the
    applied events reach in each partition."""

    #: Whether other processes fold into the same state (events they append are folded by them).
    shared: bool

    def get(self, user_id: str) -> UserSnapshot | None:
        """The user's state, or ``None`` for a user with no events."""
        ...

    def apply(self, events: Sequence[EventRecord], item_idx: Sequence[int]) -> list[int]:
        """Fold events into user state; ``item_idx[i]`` is the catalogue index of ``events[i]``. Returns the
        positions of the events this call applied: all of them, except in a store shared by several workers,
        where events at or below their partition's applied offset were applied by another worker already."""
        ...

    def applied(self, partitions: int = 1) -> Cursor:
        """Per partition (of the first ``partitions``), the highest offset applied."""
        ...

    def skip_to(self, offset: int) -> None:
        """Count every event of ``offset``'s partition up to ``offset`` as applied without folding it
        (events no state can fold)."""
        ...

    def get_many(self, user_ids: Sequence[str]) -> list[UserSnapshot | None]:
        """:meth:`get` for several users at once (one round trip for a networked backend)."""
        ...

    def sequences(self, user_ids: Sequence[str]) -> list[np.ndarray | None]:
        """Per user, the sequence's items only (catalogue indices, newest last), or ``None``: the cheap read
        for many users at once."""
        ...

    def followers(self, items: Sequence[int]) -> list[dict[int, float]]:
        """Per catalogue index, the items that followed it in users' sequences and how often (see
        :mod:`freshrec.state.graph`); reflects every applied event (empty when the store keeps no graph)."""
        ...

    def recent_users(self, items: Sequence[int], limit: int) -> list[list[str]]:
        """Per catalogue index, up to ``limit`` users whose sequence most recently gained it, newest first."""
        ...

    def delete(self, user_id: str) -> None:
        """Forget a user: their sequence, and their place among each item's recent users."""
        ...

    def user_ids(self) -> list[str]:
        """Every user with state."""
        ...

    def __len__(self) -> int:
        """Users with state."""
        ...


def open_state_store(url: str, *, types, max_len: int, collapse_repeats: bool, item_graph: bool = True) -> StateStore:
    """Open the state store a URL names. Schemes: ``memory://`` (in this process) and
    ``redis://HOST:PORT/DB`` (shared by every worker). ``item_graph``: keep the live item graph
    (:mod:`freshrec.state.graph`) the candidate sources read; without it ``followers`` and ``recent_users``
    answer empty."""
    scheme, _ = split_url(url)
    if scheme == "memory":
        from freshrec.state.memory import MemoryStateStore

        return MemoryStateStore(types, max_len=max_len, collapse_repeats=collapse_repeats, item_graph=item_graph)
    if scheme == "redis":
        from freshrec.state.redis import RedisStateStore

        client = connect_redis(url)
        return RedisStateStore(client, types, max_len=max_len, collapse_repeats=collapse_repeats, item_graph=item_graph)
    raise ValueError(f"unknown state store URL scheme {scheme!r} in {url!r}; supported: memory, redis")

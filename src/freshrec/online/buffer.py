"""The anti-forgetting buffer: a uniform sample of past users whose sequences are replayed in training."""

from __future__ import annotations

import numpy as np


class ReservoirBuffer:
    """Reservoir sampling (Vitter's algorithm R) over a stream of keys: after n additions every key seen
    so far is in the buffer with probability ``capacity / n``, so old behaviour keeps being replayed in
    proportion to how common it was, however long the stream runs.

    Example
    -------
    >>> buf = ReservoirBuffer(capacity=3, seed=0)
    >>> for user in ["a", "b", "c", "d", "e"]:
    ...     buf.add(user)
    >>> len(buf), buf.seen
    (3, 5)
    """

    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.items: list[str] = []
        self.seen = 0
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, key: str) -> None:
        """Offer one key: kept while there is room, afterwards in place of a random one with probability
        ``capacity / seen``."""
        self.extend([key])

    def extend(self, keys: list[str]) -> None:
        """:meth:`add` each key in order, drawing the slots for all of them at once (one random draw per
        key cost more than the rest of the trainer's bookkeeping for an event).

        >>> buf = ReservoirBuffer(capacity=2, seed=0)
        >>> buf.extend(["a", "b", "c", "d"])
        >>> len(buf), buf.seen
        (2, 4)
        """
        room = min(len(keys), self.capacity - len(self.items))
        self.items.extend(keys[:room])
        self.seen += room
        rest = keys[room:]
        if not rest:
            return
        # key j of the rest is the (seen + j + 1)-th addition: its slot is uniform in [0, seen + j]
        slots = self._rng.integers(np.arange(self.seen + 1, self.seen + len(rest) + 1))
        self.seen += len(rest)
        for key, slot in zip(rest, slots.tolist(), strict=True):
            if slot < self.capacity:
                self.items[slot] = key

    def remove(self, keys: set[str]) -> None:
        """Forget these keys (erased users); their slots are refilled by later additions."""
        self.items = [k for k in self.items if k not in keys]

    def sample(self, n: int, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """Up to ``n`` distinct keys, uniformly, leaving out ``exclude``."""
        pool = list(dict.fromkeys(k for k in self.items if k not in exclude))
        if len(pool) <= n:
            return pool
        picks = self._rng.choice(len(pool), size=n, replace=False)
        return [pool[i] for i in picks]

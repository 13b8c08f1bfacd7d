"""Trending: time-decayed item popularity, the fallback for users the model cannot personalise.

Each positive event adds ``2 ** ((ts - ref) / half_life)`` to its item's score. Ranking by that sum is
ranking by exponentially decayed counts; ``ref`` moves forward whenever the exponent grows large, so the
sums never overflow however long the stream runs. Time is event time (the newest ``ts`` seen), so
replaying a historical dataset trends the way it did back then. Besides the half-life that ranks trending
lists, more can be tracked side by side (the ranker reads popularity over a day, a week, a month), with
each item's all-time count and the time it was first seen.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

#: Exponent past which the reference time moves forward (2**40 is far from overflowing a float).
REBASE_EXPONENT = 40.0


class Trending:
    """Decayed popularity per catalogue index, at one or more half-lives.

    Example
    -------
    >>> t = Trending(half_life_s=3600)
    >>> t.add([1, 2, 2], [0.0, 0.0, 0.0]); t.add([1], [7200.0])
    >>> scores = t.scores(3)
    >>> [round(x, 2) for x in scores.tolist()]   # item 2's two old events now weigh 0.25 each
    [0.0, 1.25, 0.5, 0.0]
    >>> t.first_seen(3).tolist()
    [nan, 0.0, 0.0, nan]
    """

    def __init__(self, half_life_s: float, more_half_lives_s: Sequence[float] = ()) -> None:
        self.half_lives = np.array([half_life_s, *more_half_lives_s], dtype=np.float64)
        if (self.half_lives <= 0).any():
            raise ValueError("half-lives must be positive")
        self.half_life_s = half_life_s
        self._scores = np.zeros((len(self.half_lives), 16), dtype=np.float64)
        self._counts = np.zeros(16, dtype=np.int64)  # undecayed: how much exposure an item has had
        self._first = np.full(16, np.nan)
        self._ref: float | None = None
        self.clock = float("-inf")
        self._lock = threading.Lock()

    def add(self, item_idx: Sequence[int] | np.ndarray, ts: Sequence[float] | np.ndarray) -> None:
        idx = np.asarray(item_idx, dtype=np.int64)
        t = np.asarray(ts, dtype=np.float64)
        if idx.size == 0:
            return
        with self._lock:
            newest = float(t.max())
            if self._ref is None:
                self._ref = newest
            if (newest - self._ref) / self.half_lives.min() > REBASE_EXPONENT:
                self._scores *= np.exp2((self._ref - newest) / self.half_lives)[:, None]
                self._ref = newest
            self.clock = max(self.clock, newest)
            need = int(idx.max()) + 1
            if need > self._counts.shape[0]:
                size = max(need, 2 * self._counts.shape[0])
                self._scores = _grown(self._scores, size, 0.0)
                self._counts = _grown(self._counts, size, 0)
                self._first = _grown(self._first, size, np.nan)
            weights = np.exp2((t[None, :] - self._ref) / self.half_lives[:, None])  # [H, E]
            np.add.at(self._scores, (slice(None), idx), weights)
            np.add.at(self._counts, idx, 1)
            np.fmin.at(self._first, idx, t)

    def add_events(self, events: Sequence, item_idx: Sequence[int], negative: frozenset[str]) -> None:
        """:meth:`add` the positive ones of ``events`` (:class:`~freshrec.schema.EventRecord`, catalogue
        indices ``item_idx``): negative types never make an item trend."""
        positive = [(i, e.ts) for i, e in zip(item_idx, events, strict=True) if e.type not in negative]
        if positive:
            items, ts = zip(*positive, strict=True)
            self.add(items, ts)

    def close(self) -> None:
        """Nothing to release (the Redis twin flushes here)."""

    def counts(self, num_items: int) -> np.ndarray:
        """[num_items + 1] positive events per item, all time (no decay)."""
        out = np.zeros(num_items + 1, dtype=np.int64)
        with self._lock:
            n = min(num_items + 1, self._counts.shape[0])
            out[:n] = self._counts[:n]
        return out

    def first_seen(self, num_items: int) -> np.ndarray:
        """[num_items + 1] time of each item's first positive event (NaN: none yet)."""
        out = np.full(num_items + 1, np.nan)
        with self._lock:
            n = min(num_items + 1, self._first.shape[0])
            out[:n] = self._first[:n]
        return out

    def scores(self, num_items: int, which: int = 0) -> np.ndarray:
        """[num_items + 1] scores at half-life ``which`` (0: the trending one), decayed to the newest event
        time (index 0 is padding, always 0)."""
        out = np.zeros(num_items + 1, dtype=np.float64)
        with self._lock:
            n = min(num_items + 1, self._counts.shape[0])
            if self._ref is not None:
                out[:n] = self._scores[which, :n] * np.exp2((self._ref - self.clock) / self.half_lives[which])
        out[0] = 0.0
        return out


def _grown(a: np.ndarray, size: int, fill: float) -> np.ndarray:
    """``a`` with its last axis extended to ``size``, new entries ``fill``."""
    out = np.full((*a.shape[:-1], size), fill, dtype=a.dtype)
    out[..., : a.shape[-1]] = a
    return out

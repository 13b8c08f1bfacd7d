"""Trending: time-decayed item popularity, the fallback for users the model cannot personalise.

Each positive event adds ``2 ** ((ts - ref) / half_life)`` to its item's score. Ranking by that sum is
ranking by exponentially decayed counts; ``ref`` moves forward whenever the exponent grows large, so the
sums never overflow however long the stream runs. Time is event time (the newest ``ts`` seen), so
replaying a historical dataset trends the way it did back then.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

_REBASE_EXPONENT = 40.0


class Trending:
    """Decayed popularity per catalogue index.

    Example
    -------
    >>> t = Trending(half_life_s=3600)
    >>> t.add([1, 2, 2], [0.0, 0.0, 0.0]); t.add([1], [7200.0])
    >>> scores = t.scores(3)
    >>> [round(x, 2) for x in scores.tolist()]   # item 2's two old events now weigh 0.25 each
    [0.0, 1.25, 0.5, 0.0]
    """

    def __init__(self, half_life_s: float) -> None:
        if half_life_s <= 0:
            raise ValueError("half_life_s must be positive")
        self.half_life_s = half_life_s
        self._scores = np.zeros(16, dtype=np.float64)
        self._counts = np.zeros(16, dtype=np.int64)  # undecayed: how much exposure an item has had
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
            if (newest - self._ref) / self.half_life_s > _REBASE_EXPONENT:
                self._scores *= np.exp2((self._ref - newest) / self.half_life_s)
                self._ref = newest
            self.clock = max(self.clock, newest)
            need = int(idx.max()) + 1
            if need > self._scores.shape[0]:
                grown = np.zeros(max(need, 2 * self._scores.shape[0]))
                grown[: self._scores.shape[0]] = self._scores
                self._scores = grown
                counts = np.zeros(grown.shape[0], dtype=np.int64)
                counts[: self._counts.shape[0]] = self._counts
                self._counts = counts
            np.add.at(self._scores, idx, np.exp2((t - self._ref) / self.half_life_s))
            np.add.at(self._counts, idx, 1)

    def counts(self, num_items: int) -> np.ndarray:
        """[num_items + 1] positive events per item, all time (no decay)."""
        out = np.zeros(num_items + 1, dtype=np.int64)
        with self._lock:
            n = min(num_items + 1, self._counts.shape[0])
            out[:n] = self._counts[:n]
        return out

    def scores(self, num_items: int) -> np.ndarray:
        """[num_items + 1] scores decayed to the newest event time (index 0 is padding, always 0)."""
        out = np.zeros(num_items + 1, dtype=np.float64)
        with self._lock:
            n = min(num_items + 1, self._scores.shape[0])
            if self._ref is not None:
                out[:n] = self._scores[:n] * np.exp2((self._ref - self.clock) / self.half_life_s)
        out[0] = 0.0
        return out

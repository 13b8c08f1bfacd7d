"""Per-key token buckets: a key spends one token per request; tokens refill at its rate up to a burst.

Each API process keeps its own buckets, so N workers allow up to N times a key's rate in all.

>>> buckets = RateLimiter(rate=2.0, burst=2)
>>> [buckets.take("k", now=0.0) for _ in range(3)]
[0.0, 0.0, 0.5]
>>> buckets.take("k", now=0.5)
0.0
"""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Token buckets by key id. ``take`` answers 0 when a request may go ahead, else the seconds to wait."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, as of)
        self._lock = threading.Lock()

    def take(self, key: str, rate: float | None = None, now: float | None = None) -> float:
        rate = rate or self.rate
        if rate <= 0:
            return 0.0
        burst = max(self.burst, 1) if rate == self.rate else max(1.0, 2 * rate)
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, then = self._buckets.get(key, (burst, now))
            tokens = min(burst, tokens + (now - then) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate

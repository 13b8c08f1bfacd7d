"""Trending in Redis: the decayed popularity every API worker reads and adds to.

The same arithmetic as :class:`~freshrec.state.trending.Trending` (each positive event adds
``2 ** ((ts - ref) / half_life)`` per half-life; ``ref`` moves forward when the exponent grows large), done by
one Lua script so concurrent workers add atomically. Each statistic is a dense array of little-endian float64
in one Redis string, indexed by catalogue index (``SETRANGE``/``GETRANGE`` at ``8 * index``): a reader fetches
a whole array with one ``GET`` and maps it with ``numpy.frombuffer``, however large the catalogue. Keys (under
``prefix``): ``tr:h<n>`` the scores at half-life ``n``, ``tr:count`` all-time counts, ``tr:first`` first times
seen (valid where the count is positive), ``tr:ref`` (a hash: half-life -> reference time) and ``tr:clock``.
Readers keep each array for ``refresh_s`` seconds: a trending list a second old is as good as a fresh one.
Writers gather what they add for :data:`FLUSH_S` and send it aggregated by item in one script call from a
background thread, so counting popularity costs the ingest path nothing; a worker killed between flushes loses
that half second of popularity (never events or user state, which are in the log and folded synchronously).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from freshrec.state.trending import REBASE_EXPONENT

log = logging.getLogger(__name__)

# ARGV: H, the H half-lives, the newest event time, then binary little-endian arrays over the batch's distinct
# items: items (int32), counts, first times, and per half-life the weights relative to the newest time
# (sum of 2 ** ((ts - newest) / half_life)), all float64.
_ADD = """
local H = tonumber(ARGV[1])
local newest = tonumber(ARGV[H + 2])
local items, counts, firsts = ARGV[H + 3], ARGV[H + 4], ARGV[H + 5]
local function getd(key, i)
  local s = redis.call('GETRANGE', key, i * 8, i * 8 + 7)
  if #s < 8 then return 0 end
  return (struct.unpack('<d', s))
end
local function setd(key, i, x) redis.call('SETRANGE', key, i * 8, struct.pack('<d', x)) end
local clock = tonumber(redis.call('GET', KEYS[2]))
if clock == nil or newest > clock then redis.call('SET', KEYS[2], string.format('%.17g', newest)) end
local factor = {}
for h = 1, H do
  local hl = tonumber(ARGV[1 + h])
  local ref = tonumber(redis.call('HGET', KEYS[1], h))
  if ref == nil or (newest - ref) / hl > REBASE then
    if ref ~= nil then
      local f = 2 ^ ((ref - newest) / hl)
      local s = redis.call('GET', KEYS[4 + h])
      if s then
        local parts = {}
        for off = 1, #s, 8 do parts[#parts + 1] = struct.pack('<d', (struct.unpack('<d', s, off)) * f) end
        redis.call('SET', KEYS[4 + h], table.concat(parts))
      end
    end
    ref = newest
    redis.call('HSET', KEYS[1], h, string.format('%.17g', newest))
  end
  factor[h] = 2 ^ ((newest - ref) / hl)
end
for k = 0, #items / 4 - 1 do
  local item = (struct.unpack('<i4', items, k * 4 + 1))
  for h = 1, H do
    local w = (struct.unpack('<d', ARGV[H + 5 + h], k * 8 + 1))
    setd(KEYS[4 + h], item, getd(KEYS[4 + h], item) + factor[h] * w)
  end
  local c = getd(KEYS[3], item)
  local t = (struct.unpack('<d', firsts, k * 8 + 1))
  setd(KEYS[3], item, c + (struct.unpack('<d', counts, k * 8 + 1)))
  if c == 0 or t < getd(KEYS[4], item) then setd(KEYS[4], item, t) end
end
return 1
""".replace("REBASE", repr(REBASE_EXPONENT))

#: Seconds between a worker's flushes of the popularity it added (one script call per flush).
FLUSH_S = 0.5
#: Items per script call of a flush.
FLUSH_CHUNK = 512


class RedisTrending:
    """See :class:`~freshrec.state.trending.Trending`; the same methods, shared through Redis.

    Example
    -------
    >>> t = RedisTrending(redis.Redis(port=6379), half_life_s=3600)   # doctest: +SKIP
    >>> t.add([1, 2, 2], [0.0, 0.0, 0.0])                             # doctest: +SKIP
    """

    def __init__(
        self,
        client: Any,
        half_life_s: float,
        more_half_lives_s: Sequence[float] = (),
        prefix: str = "freshrec:",
        refresh_s: float = 1.0,
    ) -> None:
        self.half_lives = np.array([half_life_s, *more_half_lives_s], dtype=np.float64)
        if (self.half_lives <= 0).any():
            raise ValueError("half-lives must be positive")
        self.half_life_s = half_life_s
        self.client = client
        self.refresh_s = refresh_s
        p = prefix + "tr:"
        self._keys = [
            p + "ref",
            p + "clock",
            p + "count",
            p + "first",
            *(f"{p}h{h}" for h in range(len(self.half_lives))),
        ]
        self._add = client.register_script(_ADD)
        self._cache: dict[int, tuple[float, np.ndarray]] = {}
        self._clock: tuple[float, tuple[list[float | None], float]] | None = None
        self._lock = threading.Lock()
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def add(self, item_idx: Sequence[int] | np.ndarray, ts: Sequence[float] | np.ndarray) -> None:
        idx = np.asarray(item_idx, dtype=np.int64)
        if idx.size == 0:
            return
        with self._lock:
            self._pending.append((idx, np.asarray(ts, dtype=np.float64)))
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_every, name="freshrec-trending", daemon=True)
                self._flusher.start()

    def _flush_every(self) -> None:
        while not self._stop.wait(FLUSH_S):
            try:
                self.flush()
            except Exception:  # Redis away: the next flush sends it all
                log.warning("could not flush trending to Redis; retrying", exc_info=True)

    def flush(self) -> None:
        """Send what was added since the last flush (aggregated per item) in one script call."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, []
            if not pending:
                return
            idx = np.concatenate([p[0] for p in pending])
            ts = np.concatenate([p[1] for p in pending])
            newest = float(ts.max())
            items, inverse = np.unique(idx, return_inverse=True)
            counts = np.bincount(inverse, minlength=len(items)).astype("<f8")
            first = np.full(len(items), np.inf)
            np.minimum.at(first, inverse, ts)
            weights = [
                np.bincount(inverse, weights=np.exp2((ts - newest) / hl), minlength=len(items)).astype("<f8")
                for hl in self.half_lives
            ]
            head: list[Any] = [len(self.half_lives), *(repr(float(h)) for h in self.half_lives), repr(newest)]
            done = 0
            try:
                # bounded script calls: Redis runs a script alone, and every worker's requests wait on it
                for lo in range(0, len(items), FLUSH_CHUNK):
                    part = slice(lo, lo + FLUSH_CHUNK)
                    args = [*head, items[part].astype("<i4").tobytes(), counts[part].tobytes()]
                    args += [first[part].astype("<f8").tobytes(), *(w[part].tobytes() for w in weights)]
                    self._add(keys=self._keys, args=args)
                    done = lo + FLUSH_CHUNK
            except Exception:
                rest = np.isin(idx, items[done:])
                with self._lock:  # keep what was not sent for the next flush
                    self._pending[:0] = [(idx[rest], ts[rest])]
                raise

    def close(self) -> None:
        """Flush what is pending and stop the flushing thread."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(timeout=10)
        self.flush()

    def add_events(self, events: Sequence, item_idx: Sequence[int], negative: frozenset[str]) -> None:
        positive = [(i, e.ts) for i, e in zip(item_idx, events, strict=True) if e.type not in negative]
        if positive:
            items, ts = zip(*positive, strict=True)
            self.add(items, ts)

    def _array(self, n: int) -> np.ndarray:
        """The ``n``-th statistic (0 count, 1 first, 2 + h scores), at most ``refresh_s`` old."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(n)
            if cached is not None and now - cached[0] < self.refresh_s:
                return cached[1]
        self.flush()  # a fresh read includes what this worker added
        raw = self.client.get(self._keys[2 + n])
        values = np.frombuffer(raw, dtype="<f8") if raw else np.zeros(0)
        with self._lock:
            self._cache[n] = (now, values)
        return values

    def _times(self) -> tuple[list[float | None], float]:
        now = time.monotonic()
        with self._lock:
            if self._clock is not None and now - self._clock[0] < self.refresh_s:
                return self._clock[1]
        self.flush()
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(self._keys[0])
        pipe.get(self._keys[1])
        refs_raw, clock = pipe.execute()
        refs = [
            float(refs_raw[str(h + 1).encode()]) if str(h + 1).encode() in refs_raw else None
            for h in range(len(self.half_lives))
        ]
        value = (refs, float("-inf") if clock is None else float(clock))
        with self._lock:
            self._clock = (now, value)
        return value

    @property
    def clock(self) -> float:
        return self._times()[1]

    def counts(self, num_items: int) -> np.ndarray:
        return _fit(self._array(0), num_items + 1, 0.0).astype(np.int64)

    def first_seen(self, num_items: int) -> np.ndarray:
        first = _fit(self._array(1), num_items + 1, np.nan)
        first[self.counts(num_items) == 0] = np.nan
        return first

    def scores(self, num_items: int, which: int = 0) -> np.ndarray:
        refs, clock = self._times()
        out = np.zeros(num_items + 1, dtype=np.float64)
        if refs[which] is not None:
            out = _fit(self._array(2 + which), num_items + 1, 0.0) * np.exp2(
                (refs[which] - clock) / self.half_lives[which]
            )
        out[0] = 0.0
        return out


def _fit(a: np.ndarray, size: int, fill: float) -> np.ndarray:
    out = np.full(size, fill, dtype=np.float64)
    n = min(size, a.shape[0])
    out[:n] = a[:n]
    return out

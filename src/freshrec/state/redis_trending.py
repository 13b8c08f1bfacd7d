"""Trending in Redis: the decayed popularity every API worker reads and adds to.

The same arithmetic as :class:`~freshrec.state.trending.Trending` (each positive event adds
``2 ** ((ts - ref) / half_life)`` per half-life; ``ref`` is rebased when the exponent grows large), done by one
Lua script so concurrent workers add atomically. Keys (under ``prefix``): ``tr:h<n>`` a hash item -> score per
half-life, ``tr:count`` item -> all-time count, ``tr:first`` item -> first time seen, ``tr:ref`` and
``tr:clock``. Readers take a snapshot of the hashes at most every ``refresh_s`` seconds: a trending list a
second old is as good as a fresh one, and one snapshot serves every request in between.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from freshrec.state.trending import REBASE_EXPONENT

_ADD = """
local H = tonumber(ARGV[1])
local hl = {}
local minhl = math.huge
for h = 1, H do hl[h] = tonumber(ARGV[1 + h]); if hl[h] < minhl then minhl = hl[h] end end
local newest = -math.huge
for j = H + 2, #ARGV, 2 do local t = tonumber(ARGV[j + 1]); if t > newest then newest = t end end
local ref = tonumber(redis.call('GET', KEYS[1]))
if ref == nil then ref = newest; redis.call('SET', KEYS[1], string.format('%.17g', ref)) end
if (newest - ref) / minhl > REBASE then
  for h = 1, H do
    local f = 2 ^ ((ref - newest) / hl[h])
    local all = redis.call('HGETALL', KEYS[4 + h])
    for i = 1, #all, 2 do
      redis.call('HSET', KEYS[4 + h], all[i], string.format('%.17g', tonumber(all[i + 1]) * f))
    end
  end
  ref = newest
  redis.call('SET', KEYS[1], string.format('%.17g', ref))
end
local clock = tonumber(redis.call('GET', KEYS[2]))
if clock == nil or newest > clock then redis.call('SET', KEYS[2], string.format('%.17g', newest)) end
for j = H + 2, #ARGV, 2 do
  local item, t = ARGV[j], tonumber(ARGV[j + 1])
  for h = 1, H do
    redis.call('HINCRBYFLOAT', KEYS[4 + h], item, string.format('%.17g', 2 ^ ((t - ref) / hl[h])))
  end
  redis.call('HINCRBY', KEYS[3], item, 1)
  local first = tonumber(redis.call('HGET', KEYS[4], item))
  if first == nil or t < first then redis.call('HSET', KEYS[4], item, string.format('%.17g', t)) end
end
return 1
""".replace("REBASE", repr(REBASE_EXPONENT))


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
        self._snapshot: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def add(self, item_idx: Sequence[int] | np.ndarray, ts: Sequence[float] | np.ndarray) -> None:
        idx = np.asarray(item_idx, dtype=np.int64)
        if idx.size == 0:
            return
        args: list[Any] = [len(self.half_lives), *(repr(float(h)) for h in self.half_lives)]
        for i, t in zip(idx.tolist(), np.asarray(ts, dtype=np.float64).tolist(), strict=True):
            args += [i, repr(t)]
        self._add(keys=self._keys, args=args)
        with self._lock:
            self._snapshot = None  # this worker's own events show at once

    def add_events(self, events: Sequence, item_idx: Sequence[int], negative: frozenset[str]) -> None:
        positive = [(i, e.ts) for i, e in zip(item_idx, events, strict=True) if e.type not in negative]
        if positive:
            items, ts = zip(*positive, strict=True)
            self.add(items, ts)

    def _read(self) -> dict[str, Any]:
        with self._lock:
            if self._snapshot is not None and time.monotonic() - self._snapshot[0] < self.refresh_s:
                return self._snapshot[1]
        pipe = self.client.pipeline(transaction=True)
        pipe.get(self._keys[0])
        pipe.get(self._keys[1])
        for key in self._keys[2:]:
            pipe.hgetall(key)
        ref, clock, counts, first, *scores = pipe.execute()
        snap = {
            "ref": None if ref is None else float(ref),
            "clock": float("-inf") if clock is None else float(clock),
            "counts": _dense(counts, np.int64, 0),
            "first": _dense(first, np.float64, np.nan),
            "scores": [_dense(s, np.float64, 0.0) for s in scores],
        }
        with self._lock:
            self._snapshot = (time.monotonic(), snap)
        return snap

    @property
    def clock(self) -> float:
        return self._read()["clock"]

    def counts(self, num_items: int) -> np.ndarray:
        return _fit(self._read()["counts"], num_items + 1, 0)

    def first_seen(self, num_items: int) -> np.ndarray:
        return _fit(self._read()["first"], num_items + 1, np.nan)

    def scores(self, num_items: int, which: int = 0) -> np.ndarray:
        snap = self._read()
        out = np.zeros(num_items + 1, dtype=np.float64)
        if snap["ref"] is not None:
            out = _fit(snap["scores"][which], num_items + 1, 0.0) * np.exp2(
                (snap["ref"] - snap["clock"]) / self.half_lives[which]
            )
        out[0] = 0.0
        return out


def _dense(raw: dict[bytes, bytes], dtype: Any, fill: float) -> np.ndarray:
    if not raw:
        return np.zeros(0, dtype=dtype)
    keys = np.fromiter((int(k) for k in raw), dtype=np.int64, count=len(raw))
    values = np.fromiter((float(v) for v in raw.values()), dtype=np.float64, count=len(raw))
    out = np.full(int(keys.max()) + 1, fill, dtype=dtype)
    out[keys] = values
    return out


def _fit(a: np.ndarray, size: int, fill: float) -> np.ndarray:
    out = np.full(size, fill, dtype=a.dtype)
    n = min(size, a.shape[0])
    out[:n] = a[:n]
    return out

"""Redis catalogue: items and the id map shared by API workers on any number of hosts.

Keys (under ``prefix``): ``ids`` a list of external ids in index order (``RPUSH`` hands out the next dense
index, atomically), ``map`` a hash external id -> index, ``item:<index>`` a hash of the item's fields (JSON
values), ``mtime`` a sorted set index -> time of its last change, ``chg`` a sorted set index -> the change
counter ``seq`` at its last change. One Lua script claims indices and writes fields, so an upsert is atomic
and indices stay dense whoever writes. Like the SQLite catalogue, every instance keeps an in-memory mirror
(ids, titles, categories, availability) for the hot path; :meth:`RedisCatalog.refresh` brings it up to date
by reading the ids appended and the items changed since the change counter it last saw.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Any

from freshrec.catalog.mirror import CatalogMirror
from freshrec.schema import CatalogItem, ItemIn

_FIELDS = ("title", "text", "categories", "attributes", "available")

# KEYS: map, ids, seq, chg, mtime. ARGV: item key prefix, now, then per item: id, number of fields, the fields
# and their JSON values. Returns per item its index (negative when this call created it), then how many items
# were created, then the change counter.
_UPSERT = """
local prefix, now = ARGV[1], ARGV[2]
local out, created, pos = {}, 0, 3
while pos <= #ARGV do
  local id, n = ARGV[pos], tonumber(ARGV[pos + 1])
  local idx = redis.call('HGET', KEYS[1], id)
  local fresh = false
  if not idx then
    idx = redis.call('RPUSH', KEYS[2], id)
    redis.call('HSET', KEYS[1], id, idx)
    redis.call('HSET', prefix .. idx, 'item_id', id, 'title', 'null', 'text', 'null', 'categories', '[]',
               'attributes', '{}', 'available', 'true')
    created = created + 1
    fresh = true
  end
  for f = 0, n - 1 do
    redis.call('HSET', prefix .. idx, ARGV[pos + 2 + 2 * f], ARGV[pos + 3 + 2 * f])
  end
  if fresh or n > 0 then
    redis.call('ZADD', KEYS[5], now, idx)
    redis.call('ZADD', KEYS[4], redis.call('INCR', KEYS[3]), idx)
  end
  if fresh then out[#out + 1] = -tonumber(idx) else out[#out + 1] = tonumber(idx) end
  pos = pos + 2 + 2 * n
end
out[#out + 1] = created
out[#out + 1] = tonumber(redis.call('GET', KEYS[3]) or '0')
return out
"""


class RedisCatalog(CatalogMirror):
    """Items and id map in Redis. See :class:`freshrec.catalog.base.Catalog` and the module docstring.

    Example
    -------
    >>> cat = RedisCatalog(redis.Redis(port=6379))                      # doctest: +SKIP
    >>> cat.upsert([ItemIn(item_id="a", title="Apple"), ItemIn(item_id="b")])   # doctest: +SKIP
    ([1, 2], 2)
    """

    def __init__(self, client: Any, prefix: str = "freshrec:cat:") -> None:
        self.client = client
        self.prefix = prefix
        self._keys = [prefix + k for k in ("map", "ids", "seq", "chg", "mtime")]
        self._upsert = client.register_script(_UPSERT)
        self._lock = threading.RLock()
        CatalogMirror.__init__(self)
        self._seq = 0
        #: Bumped on every change, so callers can cache derived arrays (e.g. the availability mask).
        self.version = 0
        self.refresh()

    # ---- the mirror ------------------------------------------------------------------------------

    def refresh(self) -> bool:
        seq = int(self.client.get(self._keys[2]) or 0)
        with self._lock:
            if seq == self._seq:
                return False
            new_ids = [i.decode() for i in self.client.lrange(self._keys[1], len(self._ids), -1)]
            changed = [int(i) for i in self.client.zrangebyscore(self._keys[3], self._seq + 1, seq)]
            for item_id in new_ids:  # their fields come with the changed items below
                self._append(item_id, None, [], True)
            changed = [i for i in changed if i <= len(self._ids)]
            pipe = self.client.pipeline(transaction=False)
            for idx in changed:
                pipe.hmget(self.prefix + f"item:{idx}", "title", "categories", "available")
            for idx, (title, categories, available) in zip(changed, pipe.execute(), strict=True):
                self._set(
                    idx, json.loads(title or b"null"), json.loads(categories or b"[]"), json.loads(available or b"true")
                )
            self._seq = seq
            self.version += 1
            return True

    # ---- writing ---------------------------------------------------------------------------------

    def _write(self, rows: list[tuple[str, list[str]]]) -> tuple[list[int], int]:
        args: list[Any] = [self.prefix + "item:", repr(time.time())]
        for item_id, fields in rows:
            args += [item_id, len(fields) // 2, *fields]
        *signed, created, seq = (int(v) for v in self._upsert(keys=self._keys, args=args))
        with self._lock:
            if not self._mirror_own(rows, signed, seq):
                self.refresh()  # another process changed the catalogue too: read everything since
        return [abs(i) for i in signed], created

    def _mirror_own(self, rows: list[tuple[str, list[str]]], signed: list[int], seq: int) -> bool:
        """Mirror this write without reading it back, when it is the only change since the last refresh
        (the change counter moved by exactly its own changes); False when it is not."""
        changes = sum(1 for (_, fields), i in zip(rows, signed, strict=True) if i < 0 or fields)
        if seq != self._seq + changes:
            return False
        for (item_id, fields), i in zip(rows, signed, strict=True):
            if i < 0:
                i = -i
                assert i == len(self._ids) + 1, "indices are handed out in order"
                self._append(item_id, None, [], True)
            if fields:
                given = dict(zip(fields[::2], (json.loads(v) for v in fields[1::2]), strict=True))
                self._set(
                    i,
                    given.get("title", self._titles[i - 1]),
                    given.get("categories", self._categories[i - 1]),
                    given.get("available", bool(self._available[i])),
                )
        self._seq = seq
        self.version += 1
        return True

    def upsert(self, items: Sequence[ItemIn]) -> tuple[list[int], int]:
        rows = []
        for it in items:  # encode everything first: a value that cannot be stored stops the batch here
            given = [f for f in _FIELDS if f in it.model_fields_set]
            fields: list[str] = []
            for f in given:
                fields += [f, json.dumps(getattr(it, f), separators=(",", ":"))]
            rows.append((it.item_id, fields))
        if not rows:
            return [], 0
        return self._write(rows)

    def internal_id(self, item_id: str, create: bool = True) -> int | None:
        return self.internal_ids([item_id], create=create)[0] or None

    def internal_ids(self, item_ids: Sequence[str], create: bool = True) -> list[int]:
        if any(i not in self._index for i in item_ids):
            self.refresh()
            missing = list(dict.fromkeys(i for i in item_ids if i not in self._index))
            if create and missing:
                self._write([(i, []) for i in missing])
        index = self._index
        return [index.get(i, 0) for i in item_ids]

    # ---- reading ---------------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[CatalogItem | None]:
        if any(i not in self._index for i in ids):
            self.refresh()
        idxs = [self._index.get(i, 0) for i in ids]
        found = {it.item_idx: it for it in self.get_by_idx([i for i in idxs if i])}
        return [found.get(i) if i else None for i in idxs]

    def get_by_idx(self, idxs: Sequence[int]) -> list[CatalogItem]:
        uniq = list(dict.fromkeys(int(i) for i in idxs))
        pipe = self.client.pipeline(transaction=False)
        for idx in uniq:
            pipe.hgetall(self.prefix + f"item:{idx}")
        out: dict[int, CatalogItem] = {}
        for idx, raw in zip(uniq, pipe.execute(), strict=True):
            if raw:
                d = {k.decode(): v for k, v in raw.items()}
                out[idx] = CatalogItem(
                    idx,
                    d["item_id"].decode(),
                    json.loads(d["title"]),
                    json.loads(d["text"]),
                    json.loads(d["categories"]),
                    json.loads(d["attributes"]),
                    bool(json.loads(d["available"])),
                )
        missing = [i for i in uniq if i not in out]
        if missing:
            raise KeyError(f"unknown item indices: {missing[:10]}")
        return [out[int(i)] for i in idxs]

    def updated_since(self, ts: float) -> list[int]:
        return [int(i) for i in self.client.zrangebyscore(self._keys[4], f"({ts!r}", "+inf")]

    def close(self) -> None:
        self.client.close()

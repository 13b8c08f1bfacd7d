"""Redis state store: live user sequences and the item graph shared by every API worker.

Keys (under ``prefix``): ``seq:<user>`` the sequence as one binary string (version, lengths, then the
arrays' bytes: one ``MGET`` reads a whole batch of users, one ``MSET`` writes them);
``users`` the set of users with state; ``fol:<item>`` a hash of follower -> count; ``ru:<item>`` a sorted set
of the users whose sequence most recently gained the item (scored by a global stamp); ``applied`` the
highest offset applied in partition 0 (``applied:<p>`` in partition ``p``); ``created`` the counter that
keeps versions unique across users, workers and deletes. Events are folded by the one rule
(:class:`~freshrec.sequence.Sequences`) in this process, on the touched users' sequences read under ``WATCH``;
the new sequences and graph updates are written in one ``MULTI``/``EXEC``, retried from the read if another
writer changed one of those users, or the applied offset of one of the events' partitions, in between.

Each logged event is applied once, whichever process gets there first: ``apply`` skips events at or below
their partition's applied offset (another worker applied them). Workers that append to one event log apply
each partition's events in offset order: an engine whose appended events do not follow the applied offset
reads the log from it (:meth:`~freshrec.engine.Engine.catch_up`), so no event is skipped and none is folded
twice.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np

from freshrec.position import Cursor, base, partition_of
from freshrec.schema import EventRecord, UserSnapshot
from freshrec.sequence import EventTypes, Sequences, UserSequence
from freshrec.state.graph import FOLLOW_WINDOW, USERS_PER_ITEM

#: Times an ``apply`` retries after another writer changed one of its users between read and write.
RETRIES = 100


_HEADER = struct.Struct("<qII")  # version, entries, seen items


def _encode(seq: UserSequence) -> bytes:
    return b"".join(
        (
            _HEADER.pack(seq.version, len(seq.items), len(seq.seen)),
            seq.items.tobytes(),
            seq.types.tobytes(),
            seq.ts.tobytes(),
            seq.seen.tobytes(),
        )
    )


def _decode(raw: bytes, max_len: int | None, collapse_repeats: bool) -> UserSequence:
    seq = UserSequence(max_len, collapse_repeats)
    seq.version, n, m = _HEADER.unpack_from(raw)
    at = _HEADER.size
    for field, code, count in (("items", "i", n), ("types", "b", n), ("ts", "d", n), ("seen", "i", m)):
        values = array(code)
        end = at + count * values.itemsize
        values.frombytes(raw[at:end])
        setattr(seq, field, values)
        at = end
    return seq


def _items(raw: bytes) -> np.ndarray:
    """Only the entries' items of an encoded sequence."""
    _, n, _ = _HEADER.unpack_from(raw)
    return np.frombuffer(raw, dtype=np.int32, count=n, offset=_HEADER.size).astype(np.int64)


class RedisStateStore:
    """See :class:`freshrec.state.base.StateStore` and the module docstring.

    Example
    -------
    >>> store = RedisStateStore(redis.Redis(port=6379), types, max_len=200)   # doctest: +SKIP
    >>> store.apply(events, item_idx)                                         # doctest: +SKIP
    """

    def __init__(
        self,
        client: Any,
        types: EventTypes,
        max_len: int = 200,
        collapse_repeats: bool = True,
        item_graph: bool = True,
        prefix: str = "freshrec:",
    ) -> None:
        self.client = client
        self.types = types
        self.max_len = max_len
        self.collapse_repeats = collapse_repeats
        self.item_graph = item_graph
        self.prefix = prefix
        #: Every worker of the deployment folds into it.
        self.shared = True

    def _key(self, kind: str, name: object) -> str:
        return f"{self.prefix}{kind}:{name}"

    def _applied_key(self, partition: int) -> str:
        return self.prefix + "applied" if partition == 0 else f"{self.prefix}applied:{partition}"

    def applied(self, partitions: int = 1) -> Cursor:
        raws = self.client.mget([self._applied_key(p) for p in range(partitions)])
        return tuple(int(raw) if raw else base(p) for p, raw in enumerate(raws))

    def __len__(self) -> int:
        return int(self.client.scard(self.prefix + "users"))

    def _read(self, user_ids: Sequence[str], client: Any = None) -> list[UserSequence | None]:
        if not user_ids:
            return []
        raws = (client or self.client).mget([self._key("seq", u) for u in user_ids])
        return [_decode(raw, self.max_len, self.collapse_repeats) if raw else None for raw in raws]

    def get(self, user_id: str) -> UserSnapshot | None:
        return self.get_many([user_id])[0]

    def get_many(self, user_ids: Sequence[str]) -> list[UserSnapshot | None]:
        return [
            seq.snapshot(user) if seq is not None else None
            for user, seq in zip(user_ids, self._read(user_ids), strict=True)
        ]

    def sequences(self, user_ids: Sequence[str]) -> list[np.ndarray | None]:
        if not user_ids:
            return []
        raws = self.client.mget([self._key("seq", u) for u in user_ids])
        return [_items(raw) if raw is not None else None for raw in raws]

    def apply(self, events: Sequence[EventRecord], item_idx: Sequence[int]) -> list[int]:
        if not len(events):
            return []
        users = list(dict.fromkeys(e.user_id for e in events))
        keys = [self._key("seq", u) for u in users]
        from redis.exceptions import WatchError

        partitions = sorted({partition_of(e.offset) for e in events})
        watermarks = [self._applied_key(p) for p in partitions]
        for _ in range(RETRIES):
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(*watermarks, *keys)
                    applied = {p: int(raw or 0) for p, raw in zip(partitions, pipe.mget(watermarks), strict=True)}
                    todo = [j for j, e in enumerate(events) if e.offset > applied[partition_of(e.offset)]]
                    if not todo:
                        return []  # another worker applied them
                    batch = [events[j] for j in todo]
                    idx = [item_idx[j] for j in todo]
                    self._fold_and_write(pipe, batch, idx, list(dict.fromkeys(e.user_id for e in batch)))
                    return todo
                except WatchError:
                    continue
        raise RuntimeError(f"state for {len(users)} users kept changing under {RETRIES} attempts to apply")

    def skip_to(self, offset: int) -> None:
        # Lua: the applied offset only ever grows, however writers interleave
        script = (
            "if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then "
            "redis.call('SET', KEYS[1], ARGV[1]) end"
        )
        self.client.eval(script, 1, self._applied_key(partition_of(offset)), offset)

    def _fold_and_write(
        self, pipe: Any, events: Sequence[EventRecord], item_idx: Sequence[int], users: list[str]
    ) -> None:
        """Read the users (``pipe`` is watching them), fold, and write everything in one transaction."""
        current = self._read(users, pipe)
        sequences = Sequences(self.types, self.max_len, self.collapse_repeats)
        missing = [u for u, seq in zip(users, current, strict=True) if seq is None]
        first = int(pipe.incrby(self.prefix + "created", len(missing))) - len(missing) + 1 if missing else 0
        fresh = iter(range(first, first + len(missing)))
        for user, seq in zip(users, current, strict=True):
            if seq is None:
                seq = UserSequence(self.max_len, self.collapse_repeats)
                seq.version = next(fresh) << 32
            sequences.put(user, seq)
        previous: dict[int, list[int]] = {}

        def before(j: int, seq: UserSequence | None) -> None:
            previous[j] = seq.items[-FOLLOW_WINDOW:].tolist() if seq is not None else []

        added = sequences.fold(events, item_idx, before if self.item_graph else None)
        stamp = int(pipe.incrby(self.prefix + "stamp", len(added))) - len(added) if added else 0
        pipe.multi()
        pipe.mset({self._key("seq", user): _encode(sequences.get(user)) for user in users})  # type: ignore[arg-type]
        pipe.sadd(self.prefix + "users", *users)
        if self.item_graph:
            for n, j in enumerate(added):
                item, user = int(item_idx[j]), events[j].user_id
                for p in previous[j]:
                    if p != item:
                        pipe.hincrbyfloat(self._key("fol", p), str(item), 1.0)
                recent = self._key("ru", item)
                pipe.zadd(recent, {user: stamp + n + 1})
                pipe.zremrangebyrank(recent, 0, -USERS_PER_ITEM - 1)
        # watched: a writer that applied more in between makes this transaction retry
        newest: dict[int, int] = {}
        for e in events:
            p = partition_of(e.offset)
            newest[p] = max(newest.get(p, 0), e.offset)
        pipe.mset({self._applied_key(p): o for p, o in newest.items()})
        pipe.execute()

    def followers(self, items: Sequence[int]) -> list[dict[int, float]]:
        if not self.item_graph:
            return [{} for _ in items]
        pipe = self.client.pipeline(transaction=False)
        for i in items:
            pipe.hgetall(self._key("fol", int(i)))
        return [{int(k): float(v) for k, v in raw.items()} for raw in pipe.execute()]

    def recent_users(self, items: Sequence[int], limit: int) -> list[list[str]]:
        if not self.item_graph or limit <= 0:
            return [[] for _ in items]
        pipe = self.client.pipeline(transaction=False)
        for i in items:
            pipe.zrevrange(self._key("ru", int(i)), 0, limit - 1)
        return [[u.decode() for u in raw] for raw in pipe.execute()]

    def user_ids(self) -> list[str]:
        return [u.decode() for u in self.client.smembers(self.prefix + "users")]

    def delete(self, user_id: str) -> None:
        key = self._key("seq", user_id)
        raw = self.client.get(key)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(key)
        pipe.srem(self.prefix + "users", user_id)
        if raw and self.item_graph:
            for item in _decode(raw, None, True).seen.tolist():
                pipe.zrem(self._key("ru", item), user_id)
        pipe.execute()

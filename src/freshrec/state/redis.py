"""Redis state store: live user sequences and the item graph shared by every API worker.

Keys (under ``prefix``): ``seq:<user>`` a hash with the sequence's arrays as bytes and its version;
``users`` the set of users with state; ``fol:<item>`` a hash of follower -> count; ``ru:<item>`` a sorted set
of the users whose sequence most recently gained the item (scored by a global stamp); ``applied`` the
highest offset applied; ``created`` the counter that keeps versions unique across users, workers and
deletes. Events are folded by the one rule (:class:`~freshrec.sequence.Sequences`) in this process, on the
touched users' sequences read under ``WATCH``; the new sequences and graph updates are written in one
``MULTI``/``EXEC``, retried from the read if another writer changed one of those users, or the applied
offset, in between.

Each logged event is applied once, whichever process gets there first: ``apply`` skips events at or below
the applied offset (another worker applied them). Workers that append to one event log apply its events in
offset order: an engine whose appended events do not follow the applied offset reads the log from it
(:meth:`~freshrec.engine.Engine.catch_up`), so no event is skipped and none is folded twice.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np

from freshrec.schema import EventRecord, UserSnapshot
from freshrec.sequence import EventTypes, Sequences, UserSequence
from freshrec.state.graph import FOLLOW_WINDOW, USERS_PER_ITEM

#: Times an ``apply`` retries after another writer changed one of its users between read and write.
RETRIES = 100


def _encode(seq: UserSequence) -> dict[str, bytes | int]:
    return {
        "items": seq.items.tobytes(),
        "types": seq.types.tobytes(),
        "ts": seq.ts.tobytes(),
        "seen": seq.seen.tobytes(),
        "version": seq.version,
    }


def _decode(raw: dict[bytes, bytes], max_len: int | None, collapse_repeats: bool) -> UserSequence:
    seq = UserSequence(max_len, collapse_repeats)
    for field, code in (("items", "i"), ("types", "b"), ("ts", "d"), ("seen", "i")):
        values = array(code)
        values.frombytes(raw.get(field.encode(), b""))
        setattr(seq, field, values)
    seq.version = int(raw.get(b"version", b"0"))
    return seq


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

    def _key(self, kind: str, name: object) -> str:
        return f"{self.prefix}{kind}:{name}"

    @property
    def applied_offset(self) -> int:
        return int(self.client.get(self.prefix + "applied") or 0)

    def __len__(self) -> int:
        return int(self.client.scard(self.prefix + "users"))

    def _read(self, user_ids: Sequence[str], client: Any = None) -> list[UserSequence | None]:
        pipe = (client or self.client).pipeline(transaction=False)
        for user in user_ids:
            pipe.hgetall(self._key("seq", user))
        return [_decode(raw, self.max_len, self.collapse_repeats) if raw else None for raw in pipe.execute()]

    def get(self, user_id: str) -> UserSnapshot | None:
        return self.get_many([user_id])[0]

    def get_many(self, user_ids: Sequence[str]) -> list[UserSnapshot | None]:
        return [
            seq.snapshot(user) if seq is not None else None
            for user, seq in zip(user_ids, self._read(user_ids), strict=True)
        ]

    def sequences(self, user_ids: Sequence[str]) -> list[np.ndarray | None]:
        pipe = self.client.pipeline(transaction=False)
        for user in user_ids:
            pipe.hget(self._key("seq", user), "items")
        return [
            np.frombuffer(raw, dtype=np.int32).astype(np.int64) if raw is not None else None for raw in pipe.execute()
        ]

    def apply(self, events: Sequence[EventRecord], item_idx: Sequence[int]) -> list[int]:
        if not len(events):
            return []
        users = list(dict.fromkeys(e.user_id for e in events))
        keys = [self._key("seq", u) for u in users]
        from redis.exceptions import WatchError

        for _ in range(RETRIES):
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(self.prefix + "applied", *keys)
                    applied = int(pipe.get(self.prefix + "applied") or 0)
                    todo = [j for j, e in enumerate(events) if e.offset > applied]
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
        self.client.eval(script, 1, self.prefix + "applied", offset)

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
        for user in users:
            seq = sequences.get(user)
            assert seq is not None
            pipe.hset(self._key("seq", user), mapping=_encode(seq))
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
        pipe.set(self.prefix + "applied", max(e.offset for e in events))
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
        seen = self.client.hget(key, "seen")
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(key)
        pipe.srem(self.prefix + "users", user_id)
        if seen:
            for item in np.frombuffer(seen, dtype=np.int32).tolist():
                pipe.zrem(self._key("ru", item), user_id)
        pipe.execute()

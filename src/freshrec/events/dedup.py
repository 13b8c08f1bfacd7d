"""Event-id de-duplication for event logs that cannot look an id up themselves (Kafka).

An append first *claims* the ids of its events: an id nobody stored is reserved for this writer, an id
already stored answers with its offset, and an id another writer has reserved but not yet stored is waited
on (so two workers given the same retried event store it once). After the broker acknowledged, the writer
records each id's offset. When the broker did not answer, an event may still be written later (the request
was on its way): its id is marked *unsure* with the log's end before the attempt, and whoever claims it
next looks for it in the log from there before storing it again.

Backends: :class:`MemoryEventIds` (one process) and :class:`RedisEventIds` (every worker of a deployment).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from freshrec.errors import Unavailable

#: How long a stored event id is remembered by the Redis index (a client retries within minutes, not weeks).
DEDUP_WINDOW_S = 7 * 24 * 3600
#: How long a reservation lives if its writer dies between claiming and storing.
CLAIM_TTL_S = 60
_STORED = """
for n, k in ipairs(KEYS) do redis.call('SET', k, ARGV[n + 1], 'EX', ARGV[1]) end
return 1
"""
# Per key: reserve it when free (1); else the stored offset; an unsure id is taken over (reserved for the
# caller, who looks in the log) and answered "?<offset>"; a reservation of another writer answers 0.
_CLAIM = """
local out = {}
for n, k in ipairs(KEYS) do
  if redis.call('SET', k, '0', 'NX', 'EX', ARGV[1]) then
    out[n] = 1
  else
    local v = redis.call('GET', k)
    if v == false then
      redis.call('SET', k, '0', 'EX', ARGV[1]); out[n] = 1
    elseif string.sub(v, 1, 1) == '?' then
      redis.call('SET', k, '0', 'EX', ARGV[1]); out[n] = v
    elseif v == '0' then
      out[n] = 0
    else
      out[n] = v
    end
  end
end
return out
"""


class Claim(NamedTuple):
    """What :meth:`EventIds.claim` found: ids already stored (with their offsets) and ids marked unsure
    (with the log offset to look for them after); every other id is now reserved for the caller."""

    stored: dict[str, int]
    unsure: dict[str, int]


class EventIds(Protocol):
    def claim(self, event_ids: Sequence[str], timeout: float) -> Claim:
        """Reserve the ids nobody stored (waiting up to ``timeout`` seconds on ids another writer reserved).
        Unsure ids are reserved too: the caller stores or releases them after looking in the log."""
        ...

    def stored(self, offsets: Mapping[str, int]) -> None:
        """Record the offsets the broker acknowledged."""
        ...

    def release(self, event_ids: Iterable[str]) -> None:
        """Drop reservations of ids that were not stored."""
        ...

    def unsure(self, event_ids: Iterable[str], after: int) -> None:
        """Mark reserved ids whose events may have been written after log offset ``after``."""
        ...


class MemoryEventIds:
    """In this process only: right for one writer (the index is filled from the log when it is opened).

    >>> ids = MemoryEventIds()
    >>> ids.claim(["a"], 1.0).stored, ids.stored({"a": 7}), ids.claim(["a", "b"], 1.0).stored
    ({}, None, {'a': 7})
    """

    def __init__(self, known: Mapping[str, int] | None = None) -> None:
        self._offsets: dict[str, int] = dict(known or {})
        self._unsure: dict[str, int] = {}
        self._pending: set[str] = set()
        self._cond = threading.Condition()

    def claim(self, event_ids: Sequence[str], timeout: float) -> Claim:
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(i in self._pending for i in event_ids):
                if not self._cond.wait(max(0.0, deadline - time.monotonic())):
                    raise Unavailable("another append holding the same event ids did not finish in time")
            found = {i: self._offsets[i] for i in event_ids if i in self._offsets}
            unsure = {i: self._unsure.pop(i) for i in event_ids if i in self._unsure}
            self._pending.update(i for i in event_ids if i not in found)
            return Claim(found, unsure)

    def stored(self, offsets: Mapping[str, int]) -> None:
        with self._cond:
            self._offsets.update(offsets)
            self._pending.difference_update(offsets)
            self._cond.notify_all()

    def release(self, event_ids: Iterable[str]) -> None:
        with self._cond:
            self._pending.difference_update(event_ids)
            self._cond.notify_all()

    def unsure(self, event_ids: Iterable[str], after: int) -> None:
        with self._cond:
            for i in event_ids:
                if i not in self._offsets:  # a late acknowledgement already settled it
                    self._unsure[i] = after
                self._pending.discard(i)
            self._cond.notify_all()


class RedisEventIds:
    """Shared by every worker: ``<prefix>eid:<id>`` holds the offset (``0`` while reserved, ``?<offset>``
    while unsure)."""

    def __init__(self, client: Any, prefix: str = "freshrec:") -> None:
        self.client = client
        self.prefix = prefix
        self._claim = client.register_script(_CLAIM)
        self._stored = client.register_script(_STORED)

    def _key(self, event_id: str) -> str:
        return f"{self.prefix}eid:{event_id}"

    def claim(self, event_ids: Sequence[str], timeout: float) -> Claim:
        found: dict[str, int] = {}
        unsure: dict[str, int] = {}
        todo = list(dict.fromkeys(event_ids))
        deadline = time.monotonic() + timeout
        while todo:
            # per id: reserved for us (1), already stored (its offset), unsure (taken over: "?<offset>") or
            # reserved by another writer (0)
            answers = self._claim(keys=[self._key(i) for i in todo], args=[CLAIM_TTL_S])
            waiting = []
            for i, answer in zip(todo, answers, strict=True):
                answer = answer.decode() if isinstance(answer, bytes) else answer
                if answer == 0 or answer == "0":
                    waiting.append(i)
                elif isinstance(answer, str) and answer.startswith("?"):
                    unsure[i] = int(answer[1:])
                elif answer != 1:
                    found[i] = int(answer)
            if waiting and time.monotonic() > deadline:
                self.release(i for i in todo if i not in found and i not in waiting)
                raise Unavailable("another worker holding the same event ids did not finish in time")
            todo = waiting
            if todo:
                time.sleep(0.005)
        return Claim(found, unsure)

    def stored(self, offsets: Mapping[str, int]) -> None:
        if not offsets:
            return
        # one command for the whole batch: a pipeline of SETs costs the client more than the server
        self._stored(keys=[self._key(i) for i in offsets], args=[DEDUP_WINDOW_S, *offsets.values()])

    def release(self, event_ids: Iterable[str]) -> None:
        keys = [self._key(i) for i in event_ids]
        if not keys:
            return
        # only reservations: an id stored meanwhile (a late acknowledgement) keeps its offset
        script = "for _, k in ipairs(KEYS) do if redis.call('GET', k) == '0' then redis.call('DEL', k) end end"
        self.client.eval(script, len(keys), *keys)

    def unsure(self, event_ids: Iterable[str], after: int) -> None:
        keys = [self._key(i) for i in event_ids]
        if not keys:
            return
        script = (
            "for _, k in ipairs(KEYS) do if redis.call('GET', k) == '0' then "
            "redis.call('SET', k, ARGV[1], 'EX', ARGV[2]) end end"
        )
        self.client.eval(script, len(keys), *keys, f"?{after}", DEDUP_WINDOW_S)

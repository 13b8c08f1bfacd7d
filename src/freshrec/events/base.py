"""EventLog: the durable, append-only record of user events; the source of truth for everything else.

Backends are chosen by URL scheme (``sqlite:///path/events.db``); see :func:`open_event_log`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from freshrec.schema import AppendResult, EventRecord
from freshrec.storage_url import connect_redis, split_url, sqlite_path


@runtime_checkable
class EventLog(Protocol):
    """Guarantees every backend keeps (checked by ``tests/events/test_contract.py``):

    * ``append`` returns only after the events are durable; a crash after it returns loses none of them;
    * an event whose ``event_id`` is already stored is acknowledged with the stored offset and not
      stored again (also within one batch);
    * offsets are positive, strictly increasing in append order, and never reused;
    * ``read`` returns events in offset order.
    """

    def append(self, events: Sequence[EventRecord]) -> list[AppendResult]:
        """Store events durably; the ``offset`` field of the inputs is ignored."""
        ...

    def read(self, after_offset: int = 0, limit: int = 10_000) -> list[EventRecord]:
        """Events with offset > ``after_offset``, oldest first, at most ``limit``."""
        ...

    def user_events(self, user_id: str, limit: int | None = None) -> list[EventRecord]:
        """A user's events in offset order (the newest ``limit`` when given)."""
        ...

    def delete_user(self, user_id: str) -> int:
        """Remove every event of a user (right to be forgotten); returns how many were removed."""
        ...

    def last_offset(self) -> int:
        """The highest offset ever assigned (0 for an empty log)."""
        ...

    def count(self) -> int:
        """Events stored."""
        ...

    def commit(self, group: str, offset: int) -> None:
        """Record that the consumer group ``group`` has processed every event up to ``offset``."""
        ...

    def committed(self, group: str) -> int | None:
        """The offset ``group`` last committed (``None``: never)."""
        ...

    def close(self) -> None: ...


def iter_pages(
    log: EventLog, after_offset: int = 0, upto_offset: int | None = None, page: int = 50_000
) -> Iterator[list[EventRecord]]:
    """The events after ``after_offset`` (up to ``upto_offset``, inclusive), a page at a time, so memory
    stays flat whatever the log's size."""
    while True:
        batch = log.read(after_offset, page)
        if upto_offset is not None:
            batch = [e for e in batch if e.offset <= upto_offset]
        if not batch:
            return
        yield batch
        after_offset = batch[-1].offset


def iter_events(log: EventLog, after_offset: int = 0, page: int = 50_000) -> Iterator[EventRecord]:
    """Every event after ``after_offset``, read page by page so memory stays flat."""
    for batch in iter_pages(log, after_offset, page=page):
        yield from batch


def open_event_log(url: str, *, synchronous: str = "FULL", shared_url: str | None = None) -> EventLog:
    """Open the event log a URL names. Schemes: ``sqlite:///<path>`` (embedded) and
    ``kafka://HOST:PORT/TOPIC``. ``shared_url``: the deployment's Redis (``redis://…``), where a Kafka log keeps
    the event-id index every worker shares; without it the index lives in this process.

    Example
    -------
    >>> import tempfile, pathlib
    >>> log = open_event_log(f"sqlite:///{tempfile.mkdtemp()}/events.db")
    >>> log.last_offset()
    0
    >>> log.close()
    """
    scheme, _ = split_url(url)
    if scheme == "sqlite":
        from freshrec.events.sqlite import SQLiteEventLog

        return SQLiteEventLog(sqlite_path(url), synchronous=synchronous)
    if scheme == "kafka":
        from freshrec.events.kafka import KafkaEventLog, parse_kafka_url

        servers, topic = parse_kafka_url(url)
        event_ids = None
        if shared_url is not None and split_url(shared_url)[0] == "redis":
            from freshrec.events.dedup import RedisEventIds

            event_ids = RedisEventIds(connect_redis(shared_url), prefix=f"freshrec:{topic}:")
        return KafkaEventLog(servers, topic, event_ids)
    raise ValueError(f"unknown event log URL scheme {scheme!r} in {url!r}; supported: sqlite, kafka")

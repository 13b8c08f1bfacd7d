"""EventLog: the durable, append-only record of user events; the source of truth for everything else.

Backends are chosen by URL scheme (``sqlite:///path/events.db``); see :func:`open_event_log`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from freshrec.position import Cursor, as_cursor
from freshrec.schema import AppendResult, EventRecord
from freshrec.storage_url import connect_redis, split_url, sqlite_path


@runtime_checkable
class EventLog(Protocol):
    """Guarantees every backend keeps (checked by ``tests/events/test_contract.py``):

    * ``append`` returns only after the events are durable; a crash after it returns loses none of them;
    * an event whose ``event_id`` is already stored is acknowledged with the stored offset and not
      stored again (also within one batch);
    * offsets (see :mod:`freshrec.position`) are unique, never reused, and strictly increasing in
      append order within a partition; all of a user's events go to one partition;
    * ``read`` returns a partition's events in offset order.
    """

    #: Partitions of the log (1 for SQLite); partition ``p``'s offsets start after ``position.base(p)``.
    partitions: int

    def append(self, events: Sequence[EventRecord]) -> list[AppendResult]:
        """Store events durably; the ``offset`` field of the inputs is ignored."""
        ...

    def read(self, after_offset: int = 0, limit: int = 10_000) -> list[EventRecord]:
        """Events of ``after_offset``'s partition with offset > ``after_offset``, oldest first, at most
        ``limit`` (``read(position.base(p))`` reads partition ``p`` from its start)."""
        ...

    def user_events(self, user_id: str, limit: int | None = None) -> list[EventRecord]:
        """A user's events in offset order (the newest ``limit`` when given)."""
        ...

    def delete_user(self, user_id: str) -> int:
        """Remove every event of a user (right to be forgotten); returns how many were removed. Their
        ``event_id``s stay known (as digests): a deleted event sent again is acknowledged as a duplicate and
        stays deleted. The erasure is announced to :meth:`erasures` readers."""
        ...

    def erasures(self, after: int = 0) -> list[tuple[int, str]]:
        """Erasures after position ``after``, oldest first: ``(position, identity.id_digest(user_id))``, for readers
        that hold users' data themselves (the online trainer)."""
        ...

    def ends(self) -> Cursor:
        """Per partition, the highest offset ever assigned (the partition's base when none was)."""
        ...

    def count(self) -> int:
        """Events stored."""
        ...

    def commit(self, group: str, cursor: Sequence[int]) -> None:
        """Record that the consumer group ``group`` has processed every event up to ``cursor``."""
        ...

    def committed(self, group: str) -> Cursor | None:
        """The cursor ``group`` last committed (``None``: never)."""
        ...

    def close(self) -> None: ...


def iter_pages(
    log: EventLog, after: Sequence[int] | None = None, upto: Sequence[int] | None = None, page: int = 50_000
) -> Iterator[list[EventRecord]]:
    """The events after cursor ``after`` (default: the start) up to cursor ``upto`` (inclusive; default: the
    end), a page at a time, so memory stays flat whatever the log's size. Partitions are read one after the
    other: each user's events come in order (they share a partition), users' events interleave by partition.
    """
    after = as_cursor(after, log.partitions)
    upto = as_cursor(upto, log.partitions) if upto is not None else None
    for p in range(log.partitions):
        position = after[p]
        while upto is None or position < upto[p]:
            batch = log.read(position, page)
            if upto is not None:
                batch = [e for e in batch if e.offset <= upto[p]]
            if not batch:
                break
            yield batch
            position = batch[-1].offset


def iter_events(log: EventLog, after: Sequence[int] | None = None, page: int = 50_000) -> Iterator[EventRecord]:
    """Every event after cursor ``after``, read page by page so memory stays flat."""
    for batch in iter_pages(log, after, page=page):
        yield from batch


def open_event_log(url: str, *, synchronous: str = "FULL", shared_url: str | None = None) -> EventLog:
    """Open the event log a URL names. Schemes: ``sqlite:///<path>`` (embedded) and
    ``kafka://HOST:PORT/TOPIC[?partitions=N]`` (``partitions``: how many a topic freshrec creates gets; an
    existing topic is used as it is). ``shared_url``: the deployment's Redis (``redis://…``), where a Kafka log keeps
    the event-id index every worker shares; without it the index lives in this process.

    Example
    -------
    >>> import tempfile, pathlib
    >>> log = open_event_log(f"sqlite:///{tempfile.mkdtemp()}/events.db")
    >>> log.ends()
    (0,)
    >>> log.close()
    """
    scheme, _ = split_url(url)
    if scheme == "sqlite":
        from freshrec.events.sqlite import SQLiteEventLog

        return SQLiteEventLog(sqlite_path(url), synchronous=synchronous)
    if scheme == "kafka":
        from freshrec.events.kafka import KafkaEventLog, parse_kafka_url

        servers, topic, partitions = parse_kafka_url(url)
        event_ids = None
        if shared_url is not None and split_url(shared_url)[0] == "redis":
            from freshrec.events.dedup import RedisEventIds

            event_ids = RedisEventIds(connect_redis(shared_url), prefix=f"freshrec:{topic}:")
        return KafkaEventLog(servers, topic, event_ids, partitions=partitions)
    raise ValueError(f"unknown event log URL scheme {scheme!r} in {url!r}; supported: sqlite, kafka")

"""Kafka event log: ``kafka://HOST:PORT/TOPIC`` (confluent-kafka, any Kafka-protocol broker).

Events are JSON records keyed by user id, written by an idempotent producer with ``acks=all``:
:meth:`KafkaEventLog.append` returns only after the broker acknowledged every event, and raises
:class:`~freshrec.errors.Unavailable` (HTTP 503) when it does not within :data:`APPEND_TIMEOUT_S`.

The topic may have any number of partitions. A user's events go to partition ``murmur2(user id) % N``, the
rule of Kafka's Java clients, so events other producers key by user id land beside freshrec's and each
user's events keep their order. An event's offset (:mod:`freshrec.position`) is its partition and its
Kafka offset plus one: in partition 0, offsets start at 1 like every other backend. Readers keep a cursor per
partition. A topic freshrec creates gets ``?partitions=N`` of the URL (default 1); adding partitions to a
topic later moves users to other partitions, which breaks their order as it does for every keyed consumer.

What Kafka cannot do itself is done beside it:

* **Event-id de-duplication** in an :class:`~freshrec.events.dedup.EventIds` index: Redis, shared by every
  worker, when the deployment has one (``storage.state_url = redis://…``), else in this process, filled
  from the topic when the log is opened.
* **Erasure**: records in a topic cannot be deleted one by one, so :meth:`KafkaEventLog.delete_user` writes
  the user's id digest (SHA-256, not the id) and the log's ends when they were erased to the compacted topic
  ``<TOPIC>.erased``; every reader skips the events of an erased user up to there from then on, and the
  topic's retention removes the bytes. A user who comes back afterwards starts afresh.
* **A user's events** (:meth:`KafkaEventLog.user_events`) are found by scanning the topic: exports are rare.

Consumer offsets are committed to the broker under a consumer group (:meth:`KafkaEventLog.commit`), where
Kafka's own tools see each reader's lag.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from freshrec.errors import Unavailable
from freshrec.events.dedup import Claim, EventIds, MemoryEventIds
from freshrec.events.identity import check_same_event, id_digest
from freshrec.position import Cursor, advance, as_cursor, covers, local, partition_of
from freshrec.position import offset as offset_of
from freshrec.schema import AppendResult, EventRecord

#: Seconds an append waits for the broker's acknowledgement before answering 503.
APPEND_TIMEOUT_S = 5.0
#: Seconds a read or a metadata call waits for the broker.
READ_TIMEOUT_S = 10.0
_FETCH = 10_000
_DIGEST = re.compile(r"[0-9a-f]{64}")
# librdkafka's own messages (a broker disconnecting, retries) go through logging, not straight to stderr
_KAFKA_LOG = logging.getLogger("freshrec.kafka")


def parse_kafka_url(url: str) -> tuple[str, str, int]:
    """``(bootstrap servers, topic, partitions to create it with)`` of
    ``kafka://HOST:PORT[,HOST:PORT…]/TOPIC[?partitions=N]``.

    >>> parse_kafka_url("kafka://broker-1:9092,broker-2:9092/shop-events?partitions=6")
    ('broker-1:9092,broker-2:9092', 'shop-events', 6)
    """
    rest, _, query = url.removeprefix("kafka://").partition("?")
    servers, _, topic = rest.partition("/")
    if not servers or not topic or "/" in topic:
        raise ValueError(f"expected kafka://HOST:PORT/TOPIC[?partitions=N], got {url!r}")
    partitions = 1
    for pair in filter(None, query.split("&")):
        name, _, value = pair.partition("=")
        if name != "partitions" or not value.isdigit() or not 1 <= int(value) <= 10_000:
            raise ValueError(f"expected ?partitions=N (1 to 10000) after the topic, got {query!r} in {url!r}")
        partitions = int(value)
    return servers, topic, partitions


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's Java clients (and librdkafka's ``murmur2_random``) give a keyed record.

    >>> [murmur2_partition(k, 1 << 31) for k in (b"21", b"abc")]
    [1173551340, 479470107]
    """
    m, h = 0x5BD1E995, (0x9747B28C ^ len(key)) & 0xFFFFFFFF
    whole = len(key) & ~3
    for i in range(0, whole, 4):
        k = (int.from_bytes(key[i : i + 4], "little") * m) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = len(key) & 3
    if tail == 3:
        h ^= key[whole + 2] << 16
    if tail >= 2:
        h ^= key[whole + 1] << 8
    if tail >= 1:
        h = ((h ^ key[whole]) * m) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


def _encode(e: EventRecord) -> bytes:
    return json.dumps(
        {
            "user_id": e.user_id,
            "item_id": e.item_id,
            "type": e.type,
            "ts": e.ts,
            "value": e.value,
            "event_id": e.event_id,
            "context": e.context,
        },
        separators=(",", ":"),
    ).encode()


def decode_record(offset: int, value: bytes | None) -> EventRecord | None:
    """The event a topic record holds, or ``None`` when it is not one (another producer's malformed record
    is skipped, never fatal to a reader)."""
    try:
        d = json.loads(value or b"")
        return EventRecord(
            offset,
            str(d["user_id"]),
            str(d["item_id"]),
            str(d["type"]),
            float(d["ts"]),
            None if d.get("value") is None else float(d["value"]),
            d.get("event_id"),
            d.get("context") or None,
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


class KafkaEventLog:
    """See :class:`freshrec.events.base.EventLog` and the module docstring.

    Example
    -------
    >>> log = KafkaEventLog("127.0.0.1:9092", "shop-events")                 # doctest: +SKIP
    >>> log.append([EventRecord(0, "u1", "sku-1", "view", 1.0)])[0].offset   # doctest: +SKIP
    1
    """

    def __init__(self, servers: str, topic: str, event_ids: EventIds | None = None, partitions: int = 1) -> None:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient

        self.servers = servers
        self.topic = topic
        self.erased_topic = f"{topic}.erased"
        self._admin = AdminClient({"bootstrap.servers": servers}, logger=_KAFKA_LOG)
        #: Partitions of the topic (as found; ``partitions`` only sizes a topic this log creates).
        self.partitions = self._ensure_topics(partitions)
        self._producer_conf = {
            "bootstrap.servers": servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 1,
            "message.timeout.ms": int(APPEND_TIMEOUT_S * 1000),
        }
        self._producer: Any = Producer(self._producer_conf, logger=_KAFKA_LOG)
        self._reader = self._consumer(f"freshrec-reader-{uuid.uuid4().hex}")
        self._erasures_reader = self._consumer(f"freshrec-erasures-{uuid.uuid4().hex}")
        self._groups: dict[str, Any] = {}
        #: user id digest -> (the log's ends when they were erased, events erased in all)
        self._erased: dict[str, tuple[Cursor, int]] = {}
        self._erased_position = 0
        self._erasure_log: list[tuple[int, str]] = []  # (position in the erasures topic, user digest)
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        if event_ids is None:
            # erased users' events too: a deleted event sent again must stay deleted
            known = {
                e.event_id: e.offset for page in self._pages(visible_only=False) for e in page if e.event_id is not None
            }
            event_ids = MemoryEventIds(known)
        self.event_ids = event_ids
        #: Per partition, the newest offset this log has written (or seen at opening): where a search for
        #: possibly written events starts after a broker timeout.
        self._acked = list(self.ends())

    # ---- set-up ----------------------------------------------------------------------------------

    def _consumer(self, group: str) -> Any:
        from confluent_kafka import Consumer

        return Consumer(
            {
                "bootstrap.servers": self.servers,
                "group.id": group,
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "fetch.wait.max.ms": 50,
            },
            logger=_KAFKA_LOG,
        )

    def _ensure_topics(self, partitions: int) -> int:
        """Create the topics that are missing; the event topic's partition count."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import NewTopic

        try:
            meta = self._admin.list_topics(timeout=READ_TIMEOUT_S)
        except KafkaException as exc:
            raise Unavailable(f"Kafka at {self.servers} did not answer: {exc}") from exc
        wanted = {
            self.topic: NewTopic(self.topic, num_partitions=partitions, replication_factor=-1),
            self.erased_topic: NewTopic(
                self.erased_topic, num_partitions=1, replication_factor=-1, config={"cleanup.policy": "compact"}
            ),
        }
        missing = [t for name, t in wanted.items() if name not in meta.topics]
        if missing:
            for name, future in self._admin.create_topics(missing, operation_timeout=READ_TIMEOUT_S).items():
                try:
                    future.result()
                except KafkaException as exc:
                    if "TOPIC_ALREADY_EXISTS" not in str(exc):  # another worker created it first
                        raise Unavailable(f"could not create Kafka topic {name!r}: {exc}") from exc
            meta = self._admin.list_topics(timeout=READ_TIMEOUT_S)
        erased = len(meta.topics[self.erased_topic].partitions)
        if erased != 1:
            raise ValueError(f"Kafka topic {self.erased_topic!r} has {erased} partitions; freshrec writes it with one")
        return len(meta.topics[self.topic].partitions)

    def _bounds(self, partition: int) -> tuple[int, int]:
        """Kafka offsets ``[low, end)`` of a partition's records. ``end`` is one past the newest record's offset:
        the high watermark on Apache Kafka; some Kafka-protocol brokers (tansu 0.6) report one past the newest
        *batch's first* offset instead, so the batch at ``high - 1`` is read to find its last record."""
        from confluent_kafka import TopicPartition

        low, high = self._watermarks(self._reader, self.topic, partition)
        if high <= low:
            return low, high
        self._reader.assign([TopicPartition(self.topic, partition, high - 1)])
        end = high
        msg = self._reader.poll(READ_TIMEOUT_S)
        while msg is not None:
            if not msg.error():
                end = max(end, msg.offset() + 1)
            msg = self._reader.poll(0)
        return low, end

    def _watermarks(self, consumer: Any, topic: str, partition: int = 0) -> tuple[int, int]:
        from confluent_kafka import KafkaException, TopicPartition

        try:
            return consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=READ_TIMEOUT_S, cached=False
            )
        except KafkaException as exc:
            raise Unavailable(f"Kafka at {self.servers} did not answer: {exc}") from exc

    # ---- writing ---------------------------------------------------------------------------------

    def append(self, events: Sequence[EventRecord]) -> list[AppendResult]:
        if not events:
            return []
        payloads = [_encode(e) for e in events]  # a value that cannot be encoded fails before anything is sent
        with self._write_lock:
            ids = list(dict.fromkeys(e.event_id for e in events if e.event_id is not None))
            claim = self.event_ids.claim(ids, APPEND_TIMEOUT_S) if ids else Claim({}, {})
            known = dict(claim.stored)
            if claim.unsure:  # an earlier attempt timed out: its events may have been written after all
                found = self._find(claim.unsure)
                self.event_ids.stored(found)
                known.update(found)
            results: list[AppendResult | None] = [None] * len(events)
            first: dict[str, int] = {}  # event id -> index of its first copy in this batch
            sent: list[int] = []
            try:
                stored = self._stored(set(known.values())) if known else {}
                for j, e in enumerate(events):
                    if e.event_id is not None and e.event_id in known:
                        check_same_event(e, (known[e.event_id], stored.get(known[e.event_id])))
                        results[j] = AppendResult(known[e.event_id], True)
                    elif e.event_id is not None and e.event_id in first:
                        check_same_event(e, (0, events[first[e.event_id]]))  # filled in from its first copy below
                    else:
                        if e.event_id is not None:
                            first[e.event_id] = j
                        sent.append(j)
            except BaseException:  # a conflict: nothing of the batch is sent, the reserved ids are freed
                self.event_ids.release(i for i in ids if i not in known)
                raise
            offsets = self._produce([(events[j].user_id, payloads[j]) for j in sent])
            delivered = {j: o for j, o in zip(sent, offsets, strict=True) if o is not None}
            self.event_ids.stored({events[j].event_id: o for j, o in delivered.items() if events[j].event_id})
            self._acked = list(advance(self._acked, delivered.values()))
            if len(delivered) < len(sent):
                # the broker may still write what it did not acknowledge: the next claim looks in the log, in
                # the event's partition from where this log had got
                lost: dict[int, list[str]] = {}
                for j in sent:
                    if j not in delivered and events[j].event_id:
                        lost.setdefault(self._partition(events[j].user_id.encode()), []).append(events[j].event_id)
                for p, ids in lost.items():
                    self.event_ids.unsure(ids, after=self._acked[p])
                raise Unavailable(
                    f"the Kafka broker at {self.servers} acknowledged {len(delivered)} of {len(sent)} events within "
                    f"{APPEND_TIMEOUT_S:g} s; retry (events sent with an event_id are stored once)"
                )
            for j, o in delivered.items():
                results[j] = AppendResult(o, False)
            for j, e in enumerate(events):
                if results[j] is None:
                    results[j] = AppendResult(delivered[first[e.event_id]], True)  # type: ignore[index]
        return results  # type: ignore[return-value]

    def _find(self, unsure: dict[str, int]) -> dict[str, int]:
        """Offsets of the ``unsure`` event ids (each with the offset to look after) that are in the log."""
        start = list(self.ends())
        for after in unsure.values():
            p = partition_of(after)
            if p < len(start):
                start[p] = min(start[p], after)
        found: dict[str, int] = {}
        for page in self._pages(tuple(start)):
            for e in page:
                if e.event_id in unsure and e.event_id not in found:
                    found[e.event_id] = e.offset
        return found

    def _stored(self, offsets: set[int]) -> dict[int, EventRecord]:
        """The visible events at these offsets (a duplicate's stored payload, to compare with the resent one).
        A retried batch's offsets lie close together: each run of them is read in one fetch."""
        out: dict[int, EventRecord] = {}
        runs: list[list[int]] = []  # [first, last] local offsets within one partition
        for o in sorted(offsets):
            if runs and partition_of(o) == partition_of(runs[-1][1]) and o - runs[-1][1] <= _FETCH:
                runs[-1][1] = o
            else:
                runs.append([o, o])
        with self._read_lock:
            self._refresh_erasures()
            for first, last in runs:
                for e in self._window(partition_of(first), local(first) - 1, local(last)):
                    if e.offset in offsets and self._visible(e):
                        out[e.offset] = e
        return out

    def _partition(self, key: bytes) -> int:
        return murmur2_partition(key, self.partitions)

    def _produce(
        self, records: list[tuple[str, bytes]], topic: str | None = None, retry_fenced: bool = True
    ) -> list[int | None]:
        """Send ``(key, value)`` records to ``topic`` (default: the event topic, partitioned by key) and wait
        for the broker; per record its offset, or ``None`` when it was not acknowledged."""
        from confluent_kafka import KafkaError, KafkaException, Producer

        if self._producer is None:
            self._producer = Producer(self._producer_conf, logger=_KAFKA_LOG)
        offsets: list[int | None] = [None] * len(records)
        errors: list[Any] = []

        def acked(n: int) -> Any:
            def callback(err: Any, msg: Any) -> None:
                if err is None:
                    offsets[n] = offset_of(msg.partition(), msg.offset() + 1)
                else:
                    errors.append(err)

            return callback

        try:
            for n, (key, value) in enumerate(records):
                raw = key.encode()
                self._producer.produce(
                    topic or self.topic,
                    value=value,
                    key=raw,
                    partition=self._partition(raw) if topic is None else 0,
                    on_delivery=acked(n),
                )
            remaining = self._producer.flush(APPEND_TIMEOUT_S + 5.0)
        except (KafkaException, BufferError) as exc:
            remaining = -1
            errors.append(exc.args[0] if exc.args else exc)
        if not remaining and not errors:
            return offsets
        _KAFKA_LOG.warning("the broker did not acknowledge %d events: %s", offsets.count(None), errors[:1])
        self._producer.purge()
        self._producer.flush(0)
        # A producer whose sends timed out carries an epoch some brokers then refuse (fenced): the next send
        # uses a fresh one. Events refused as fenced were never written, so they are sent again at once.
        self._producer = None
        fenced = {KafkaError._FATAL, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
        if retry_fenced and errors and all(getattr(e, "code", lambda: None)() in fenced for e in errors):
            todo = [n for n, o in enumerate(offsets) if o is None]
            again = self._produce([records[n] for n in todo], topic, retry_fenced=False)
            for n, o in zip(todo, again, strict=True):
                offsets[n] = o
        return offsets

    # ---- reading ---------------------------------------------------------------------------------

    def _refresh_erasures(self) -> None:
        from confluent_kafka import TopicPartition

        _, high = self._watermarks(self._erasures_reader, self.erased_topic)
        if high <= self._erased_position:
            return
        self._erasures_reader.assign([TopicPartition(self.erased_topic, 0, self._erased_position)])
        while self._erased_position < high:
            wanted = min(_FETCH, high - self._erased_position)
            msgs = self._erasures_reader.consume(num_messages=wanted, timeout=READ_TIMEOUT_S)
            if not msgs:
                raise Unavailable(f"Kafka at {self.servers} returned nothing from {self.erased_topic}")
            for msg in msgs:
                if msg.error():
                    continue
                self._erased_position = msg.offset() + 1
                try:
                    d = json.loads(msg.value())
                    key = msg.key().decode()
                    digest = key if _DIGEST.fullmatch(key) else id_digest(key)  # records keyed by the id itself too
                    self._erased[digest] = (as_cursor(d["upto"]), int(d["events"]))
                    self._erasure_log.append((self._erased_position, digest))
                except (ValueError, TypeError, KeyError, AttributeError):
                    continue

    def _visible(self, e: EventRecord) -> bool:
        if not self._erased:
            return True
        erased = self._erased.get(id_digest(e.user_id))
        return erased is None or not covers(erased[0], e.offset)

    def _window(self, partition: int, start: int, end: int) -> list[EventRecord]:
        """Events of a partition at Kafka offsets [start, end)."""
        from confluent_kafka import TopicPartition

        out: list[EventRecord] = []
        self._reader.assign([TopicPartition(self.topic, partition, start)])
        position = start
        while position < end:
            msgs = self._reader.consume(num_messages=min(_FETCH, end - position), timeout=READ_TIMEOUT_S)
            if not msgs:
                raise Unavailable(f"Kafka at {self.servers} returned nothing for offset {position} of {self.topic}")
            for msg in msgs:
                if msg.error():
                    continue
                offset = msg.offset()
                if offset >= end:
                    break
                position = offset + 1
                record = decode_record(offset_of(partition, offset + 1), msg.value())
                if record is not None:
                    out.append(record)
        return out

    def _pages(self, after: Cursor | None = None, limit: int = 50_000, visible_only: bool = True) -> Any:
        """Pages of visible events (``visible_only=False``: erased ones too) after cursor ``after`` up to the
        current end, partition by partition (erasures refreshed once)."""
        after = as_cursor(after, self.partitions)
        with self._read_lock:
            self._refresh_erasures()
            bounds = [self._bounds(p) for p in range(self.partitions)]
        for p, (low, high) in enumerate(bounds):
            position = max(local(after[p]), low)
            while position < high:
                end = min(high, position + limit)
                with self._read_lock:
                    page = [e for e in self._window(p, position, end) if not visible_only or self._visible(e)]
                position = end
                if page:
                    yield page

    def read(self, after_offset: int = 0, limit: int = 10_000) -> list[EventRecord]:
        p = partition_of(after_offset)
        if p >= self.partitions:
            return []
        with self._read_lock:
            self._refresh_erasures()
            low, high = self._bounds(p)
            position = max(local(after_offset), low)
            while position < high:  # a window of erased users' events only: look further
                end = min(high, position + limit)
                page = [e for e in self._window(p, position, end) if self._visible(e)]
                if page:
                    return page
                position = end
        return []

    def user_events(self, user_id: str, limit: int | None = None) -> list[EventRecord]:
        # another producer may have keyed the user's events differently: every partition is read
        found: list[EventRecord] = []
        for page in self._pages():
            found.extend(e for e in page if e.user_id == user_id)
        found.sort(key=lambda e: (e.ts, e.offset) if self.partitions > 1 else e.offset)
        return found[-limit:] if limit is not None else found

    def delete_user(self, user_id: str) -> int:
        removed = len(self.user_events(user_id))
        if not removed:
            return 0
        upto = self.ends()
        with self._read_lock:
            before = self._erased.get(id_digest(user_id), ((), 0))[1]
        value = json.dumps({"upto": list(upto), "events": before + removed}).encode()
        with self._write_lock:
            delivered = self._produce([(id_digest(user_id), value)], topic=self.erased_topic)
        if None in delivered:
            raise Unavailable(f"the Kafka broker at {self.servers} did not acknowledge the erasure of {user_id!r}")
        with self._read_lock:
            self._refresh_erasures()
        return removed

    def erasures(self, after: int = 0) -> list[tuple[int, str]]:
        with self._read_lock:
            self._refresh_erasures()
            return [(n, d) for n, d in self._erasure_log if n > after]

    def ends(self) -> Cursor:
        with self._read_lock:
            return tuple(offset_of(p, self._bounds(p)[1]) for p in range(self.partitions))

    def count(self) -> int:
        with self._read_lock:
            self._refresh_erasures()
            stored = sum(high - low for low, high in (self._bounds(p) for p in range(self.partitions)))
            return stored - sum(n for _, n in self._erased.values())

    # ---- consumer groups -------------------------------------------------------------------------

    def commit(self, group: str, cursor: Sequence[int]) -> None:
        """Record that ``group`` has consumed every event up to ``cursor`` (Kafka's committed offset of each
        partition: the next offset to read)."""
        from confluent_kafka import KafkaException, TopicPartition

        with self._read_lock:
            consumer = self._groups.get(group) or self._groups.setdefault(group, self._consumer(group))
            try:
                consumer.commit(
                    offsets=[TopicPartition(self.topic, p, local(c)) for p, c in enumerate(cursor)],
                    asynchronous=False,
                )
            except KafkaException as exc:
                raise Unavailable(f"could not commit offsets for group {group!r}: {exc}") from exc

    def committed(self, group: str) -> Cursor | None:
        """The cursor ``group`` last committed, or ``None``."""
        from confluent_kafka import KafkaException, TopicPartition

        with self._read_lock:
            consumer = self._groups.get(group) or self._groups.setdefault(group, self._consumer(group))
            try:
                tps = consumer.committed(
                    [TopicPartition(self.topic, p) for p in range(self.partitions)], timeout=READ_TIMEOUT_S
                )
            except KafkaException as exc:
                raise Unavailable(f"could not read group {group!r}'s offsets: {exc}") from exc
        if all(tp.offset < 0 for tp in tps):
            return None
        return tuple(offset_of(p, max(tp.offset, 0)) for p, tp in enumerate(tps))

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(APPEND_TIMEOUT_S)
        for consumer in (self._reader, self._erasures_reader, *self._groups.values()):
            consumer.close()

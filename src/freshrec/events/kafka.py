"""Kafka event log: ``kafka://HOST:PORT/TOPIC`` (confluent-kafka, any Kafka-protocol broker).

Events are JSON records keyed by user id, written by an idempotent producer with ``acks=all``:
:meth:`KafkaEventLog.append` returns only after the broker acknowledged every event, and raises
:class:`~freshrec.errors.Unavailable` (HTTP 503) when it does not within :data:`APPEND_TIMEOUT_S`.
An event's offset is its Kafka offset plus one, so offsets start at 1 like every other backend.

The topic has one partition: the log keeps one order, which the exactly-once fold of live state (the applied
offset) and the trainer's committed offset rely on. A partition carries far more than one deployment's
events per second (see docs/benchmarks.md); a topic with more partitions is refused with an explanation.

What Kafka cannot do itself is done beside it:

* **Event-id de-duplication** in an :class:`~freshrec.events.dedup.EventIds` index: Redis, shared by every
  worker, when the deployment has one (``storage.state_url = redis://…``), else in this process, filled
  from the topic when the log is opened.
* **Erasure**: records in a topic cannot be deleted one by one, so :meth:`KafkaEventLog.delete_user` writes
  the user and the offset they were erased at to the compacted topic ``<TOPIC>.erased``; every reader
  skips the events of an erased user up to that offset from then on, and the topic's retention removes
  the bytes. A user who comes back afterwards starts afresh.
* **A user's events** (:meth:`KafkaEventLog.user_events`) are found by scanning the topic: exports are rare.

Consumer offsets are committed to the broker under a consumer group (:meth:`KafkaEventLog.commit`), where
Kafka's own tools see each reader's lag.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any

from freshrec.errors import Unavailable
from freshrec.events.dedup import Claim, EventIds, MemoryEventIds
from freshrec.schema import AppendResult, EventRecord

#: Seconds an append waits for the broker's acknowledgement before answering 503.
APPEND_TIMEOUT_S = 5.0
#: Seconds a read or a metadata call waits for the broker.
READ_TIMEOUT_S = 10.0
_FETCH = 10_000
# librdkafka's own messages (a broker disconnecting, retries) go through logging, not straight to stderr
_KAFKA_LOG = logging.getLogger("freshrec.kafka")


def parse_kafka_url(url: str) -> tuple[str, str]:
    """``(bootstrap servers, topic)`` of ``kafka://HOST:PORT[,HOST:PORT…]/TOPIC``.

    >>> parse_kafka_url("kafka://broker-1:9092,broker-2:9092/shop-events")
    ('broker-1:9092,broker-2:9092', 'shop-events')
    """
    rest = url.removeprefix("kafka://")
    servers, _, topic = rest.partition("/")
    if not servers or not topic or "/" in topic:
        raise ValueError(f"expected kafka://HOST:PORT/TOPIC, got {url!r}")
    return servers, topic


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

    def __init__(self, servers: str, topic: str, event_ids: EventIds | None = None) -> None:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient

        self.servers = servers
        self.topic = topic
        self.erased_topic = f"{topic}.erased"
        self._admin = AdminClient({"bootstrap.servers": servers}, logger=_KAFKA_LOG)
        self._ensure_topics()
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
        #: user -> (offset they were erased at, events erased in all)
        self._erased: dict[str, tuple[int, int]] = {}
        self._erased_position = 0
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        if event_ids is None:
            known = {e.event_id: e.offset for page in self._pages(0) for e in page if e.event_id is not None}
            event_ids = MemoryEventIds(known)
        self.event_ids = event_ids
        #: The newest offset this log has written (or seen at opening): where a search for possibly written
        #: events starts after a broker timeout.
        self._acked = self.last_offset()

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

    def _ensure_topics(self) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import NewTopic

        try:
            meta = self._admin.list_topics(timeout=READ_TIMEOUT_S)
        except KafkaException as exc:
            raise Unavailable(f"Kafka at {self.servers} did not answer: {exc}") from exc
        wanted = {
            self.topic: NewTopic(self.topic, num_partitions=1, replication_factor=-1),
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
        for name in wanted:
            partitions = len(meta.topics[name].partitions)
            if partitions != 1:
                raise ValueError(
                    f"Kafka topic {name!r} has {partitions} partitions; freshrec's event log keeps one order "
                    "and needs a topic with exactly one partition"
                )

    def _bounds(self) -> tuple[int, int]:
        """Kafka offsets ``[low, end)`` of the topic's records. ``end`` is one past the newest record's offset:
        the high watermark on Apache Kafka; some Kafka-protocol brokers (tansu 0.6) report one past the newest
        *batch's first* offset instead, so the batch at ``high - 1`` is read to find its last record."""
        from confluent_kafka import TopicPartition

        low, high = self._watermarks(self._reader, self.topic)
        if high <= low:
            return low, high
        self._reader.assign([TopicPartition(self.topic, 0, high - 1)])
        end = high
        msg = self._reader.poll(READ_TIMEOUT_S)
        while msg is not None:
            if not msg.error():
                end = max(end, msg.offset() + 1)
            msg = self._reader.poll(0)
        return low, end

    def _watermarks(self, consumer: Any, topic: str) -> tuple[int, int]:
        from confluent_kafka import KafkaException, TopicPartition

        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=READ_TIMEOUT_S, cached=False)
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
                found = self._find(set(claim.unsure), after=min(claim.unsure.values()))
                self.event_ids.stored(found)
                known.update(found)
            results: list[AppendResult | None] = [None] * len(events)
            first: dict[str, int] = {}  # event id -> index of its first copy in this batch
            sent: list[int] = []
            for j, e in enumerate(events):
                if e.event_id is not None and e.event_id in known:
                    results[j] = AppendResult(known[e.event_id], True)
                elif e.event_id is not None and e.event_id in first:
                    continue  # filled in from its first copy below
                else:
                    if e.event_id is not None:
                        first[e.event_id] = j
                    sent.append(j)
            offsets = self._produce([(events[j].user_id, payloads[j]) for j in sent])
            delivered = {j: o for j, o in zip(sent, offsets, strict=True) if o is not None}
            self.event_ids.stored({events[j].event_id: o for j, o in delivered.items() if events[j].event_id})
            if delivered:
                self._acked = max(self._acked, *delivered.values())
            if len(delivered) < len(sent):
                # the broker may still write what it did not acknowledge: the next claim looks in the log
                self.event_ids.unsure(
                    (events[j].event_id for j in sent if j not in delivered and events[j].event_id), after=self._acked
                )
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

    def _find(self, event_ids: set[str], after: int) -> dict[str, int]:
        """Offsets of those ``event_ids`` that are in the log after offset ``after``."""
        found: dict[str, int] = {}
        for page in self._pages(after):
            for e in page:
                if e.event_id in event_ids and e.event_id not in found:
                    found[e.event_id] = e.offset
        return found

    def _produce(
        self, records: list[tuple[str, bytes]], topic: str | None = None, retry_fenced: bool = True
    ) -> list[int | None]:
        """Send ``(key, value)`` records to ``topic`` (default: the event topic) and wait for the broker; per
        record its offset plus one, or ``None`` when it was not acknowledged."""
        from confluent_kafka import KafkaError, KafkaException, Producer

        if self._producer is None:
            self._producer = Producer(self._producer_conf, logger=_KAFKA_LOG)
        offsets: list[int | None] = [None] * len(records)
        errors: list[Any] = []

        def acked(n: int) -> Any:
            def callback(err: Any, msg: Any) -> None:
                if err is None:
                    offsets[n] = msg.offset() + 1
                else:
                    errors.append(err)

            return callback

        try:
            for n, (key, value) in enumerate(records):
                self._producer.produce(topic or self.topic, value=value, key=key.encode(), on_delivery=acked(n))
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
                    self._erased[msg.key().decode()] = (int(d["upto"]), int(d["events"]))
                except (ValueError, TypeError, KeyError, AttributeError):
                    continue

    def _visible(self, e: EventRecord) -> bool:
        erased = self._erased.get(e.user_id)
        return erased is None or e.offset > erased[0]

    def _window(self, start: int, end: int) -> list[EventRecord]:
        """Events at Kafka offsets [start, end)."""
        from confluent_kafka import TopicPartition

        out: list[EventRecord] = []
        self._reader.assign([TopicPartition(self.topic, 0, start)])
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
                record = decode_record(offset + 1, msg.value())
                if record is not None:
                    out.append(record)
        return out

    def _pages(self, after_offset: int, limit: int = 50_000) -> Any:
        """Pages of visible events after ``after_offset`` up to the current end (erasures refreshed once)."""
        with self._read_lock:
            self._refresh_erasures()
            low, high = self._bounds()
        position = max(after_offset, low)
        while position < high:
            end = min(high, position + limit)
            with self._read_lock:
                page = [e for e in self._window(position, end) if self._visible(e)]
            position = end
            if page:
                yield page

    def read(self, after_offset: int = 0, limit: int = 10_000) -> list[EventRecord]:
        with self._read_lock:
            self._refresh_erasures()
            low, high = self._bounds()
            position = max(after_offset, low)
            while position < high:  # a window of erased users' events only: look further
                end = min(high, position + limit)
                page = [e for e in self._window(position, end) if self._visible(e)]
                if page:
                    return page
                position = end
        return []

    def user_events(self, user_id: str, limit: int | None = None) -> list[EventRecord]:
        found: deque[EventRecord] = deque(maxlen=limit)
        for page in self._pages(0):
            found.extend(e for e in page if e.user_id == user_id)
        return list(found)

    def delete_user(self, user_id: str) -> int:
        removed = len(self.user_events(user_id))
        if not removed:
            return 0
        with self._read_lock:
            upto = self._bounds()[1]
            before = self._erased.get(user_id, (0, 0))[1]
        value = json.dumps({"upto": upto, "events": before + removed}).encode()
        with self._write_lock:
            delivered = self._produce([(user_id, value)], topic=self.erased_topic)
        if None in delivered:
            raise Unavailable(f"the Kafka broker at {self.servers} did not acknowledge the erasure of {user_id!r}")
        with self._read_lock:
            self._refresh_erasures()
        return removed

    def last_offset(self) -> int:
        with self._read_lock:
            return self._bounds()[1]

    def count(self) -> int:
        with self._read_lock:
            self._refresh_erasures()
            low, high = self._bounds()
            return high - low - sum(n for _, n in self._erased.values())

    # ---- consumer groups -------------------------------------------------------------------------

    def commit(self, group: str, offset: int) -> None:
        """Record that ``group`` has consumed every event up to ``offset`` (Kafka's committed offset)."""
        from confluent_kafka import KafkaException, TopicPartition

        with self._read_lock:
            consumer = self._groups.get(group) or self._groups.setdefault(group, self._consumer(group))
            try:
                consumer.commit(offsets=[TopicPartition(self.topic, 0, offset)], asynchronous=False)
            except KafkaException as exc:
                raise Unavailable(f"could not commit offset {offset} for group {group!r}: {exc}") from exc

    def committed(self, group: str) -> int | None:
        """The offset ``group`` last committed, or ``None``."""
        from confluent_kafka import KafkaException, TopicPartition

        with self._read_lock:
            consumer = self._groups.get(group) or self._groups.setdefault(group, self._consumer(group))
            try:
                [tp] = consumer.committed([TopicPartition(self.topic, 0)], timeout=READ_TIMEOUT_S)
            except KafkaException as exc:
                raise Unavailable(f"could not read group {group!r}'s offset: {exc}") from exc
        return tp.offset if tp.offset >= 0 else None

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(APPEND_TIMEOUT_S)
        for consumer in (self._reader, self._erasures_reader, *self._groups.values()):
            consumer.close()

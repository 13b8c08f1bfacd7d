"""What only the Kafka event log has to get right: events the broker wrote without acknowledging them in
time, topics with several partitions, and records other producers wrote."""

from __future__ import annotations

import json
import uuid

import pytest

from freshrec.events.base import open_event_log
from freshrec.events.kafka import KafkaEventLog, _encode
from freshrec.position import partition_of
from freshrec.schema import AppendResult, EventRecord
from tests.servers import KafkaBroker


def ev(event_id: str | None = None, user: str = "u1") -> EventRecord:
    return EventRecord(0, user, "i1", "view", 1.0, event_id=event_id)


@pytest.fixture(params=["memory", "redis"])
def log(request: pytest.FixtureRequest, kafka_broker: KafkaBroker):
    shared = request.getfixturevalue("empty_redis") if request.param == "redis" else None
    opened = open_event_log(kafka_broker.url(f"t-{uuid.uuid4().hex[:10]}"), shared_url=shared)
    yield opened
    opened.close()


def test_an_event_written_after_a_timeout_is_found_not_stored_twice(log: KafkaEventLog) -> None:
    log.append([ev("a")])
    # an attempt the broker did not acknowledge in time, though it wrote the event
    assert log.event_ids.claim(["late"], 1.0).stored == {}
    assert log._produce([("u1", _encode(ev("late")))]) == [2]
    log.event_ids.unsure(["late"], after=1)
    again = log.append([ev("late"), ev("new")])
    assert again[0] == AppendResult(2, True) and not again[1].duplicate
    # an attempt that never reached the log: the retry stores it
    log.event_ids.claim(["lost"], 1.0)
    log.event_ids.unsure(["lost"], after=log.ends()[0])
    [stored] = log.append([ev("lost")])
    assert not stored.duplicate
    assert log.count() == 4
    assert log.append([ev("lost")]) == [AppendResult(stored.offset, True)]


def test_an_existing_partitioned_topic_is_shared_with_java_keyed_producers(kafka_broker: KafkaBroker) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"wide-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result()
    log = open_event_log(kafka_broker.url(topic) + "?partitions=2")  # sizes only a topic it creates
    try:
        assert log.partitions == 4
        users = [f"shopper-{n}" for n in range(8)]
        mine = {u: log.append([ev(f"{u}-1", u)])[0].offset for u in users}
        # another service's producer, partitioning as Kafka's Java clients do
        producer = Producer({"bootstrap.servers": log.servers, "partitioner": "murmur2_random"})
        for u in users:
            producer.produce(topic, key=u.encode(), value=_encode(ev(f"{u}-2", u)))
        assert producer.flush(30) == 0
        for u in users:
            events = log.user_events(u)
            assert [e.event_id for e in events] == [f"{u}-1", f"{u}-2"]
            assert {partition_of(e.offset) for e in events} == {partition_of(mine[u])}
        assert len({partition_of(o) for o in mine.values()}) > 1
    finally:
        log.close()


def test_a_late_write_is_found_in_its_partition(kafka_broker: KafkaBroker) -> None:
    log = open_event_log(kafka_broker.url(f"t-{uuid.uuid4().hex[:10]}?partitions=3"))
    try:
        log.append([ev(f"warm-{n}", f"u{n}") for n in range(6)])
        before = log.ends()
        assert log.event_ids.claim(["late"], 1.0).stored == {}
        [written] = log._produce([("u5", _encode(ev("late", "u5")))])
        assert written is not None
        log.event_ids.unsure(["late"], after=before[partition_of(written)])
        assert log.append([ev("late", "u5")]) == [AppendResult(written, True)]
    finally:
        log.close()


def test_records_that_are_not_events_are_skipped(log: KafkaEventLog) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": log.servers})
    for value in (b"\x00\x01", json.dumps({"user_id": "u"}).encode(), _encode(ev("ok"))):
        producer.produce(log.topic, value=value)
    assert producer.flush(30) == 0
    assert [(e.offset, e.event_id) for e in log.read(0)] == [(3, "ok")]


def test_the_erasure_record_holds_a_digest_not_the_user_id(log: KafkaEventLog) -> None:
    from confluent_kafka import Consumer, TopicPartition

    log.append([ev("e-1", user="ada@example.org"), ev("e-2", user="bob")])
    assert log.delete_user("ada@example.org") == 1
    reader = Consumer({"bootstrap.servers": log.servers, "group.id": f"check-{uuid.uuid4().hex}"})
    try:
        reader.assign([TopicPartition(log.erased_topic, 0, 0)])
        [msg] = reader.consume(num_messages=1, timeout=30)
        assert b"ada@example.org" not in msg.key() + msg.value()
    finally:
        reader.close()
    assert [e.user_id for e in log.read(0)] == ["bob"]

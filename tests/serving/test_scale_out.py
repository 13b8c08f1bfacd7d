"""Scaled out: several engines (workers) on one Kafka topic and one Redis, against real servers.

Each worker appends to the shared log and folds into the shared state; what one acknowledges, every other
reads on its very next request. Events other producers write to the topic reach the state through
``freshrec ingest``; new model versions reach every worker through the Redis notification.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from freshrec.cli import app as cli
from freshrec.config import Settings
from freshrec.engine import INGEST_GROUP, build_engine
from freshrec.errors import NotFound
from freshrec.position import local, partition_of
from freshrec.schema import EventIn, ItemIn
from tests.conftest import TrainedStore, make_settings, wait_for
from tests.servers import KafkaBroker


def scaled(data_dir: Path, broker: KafkaBroker, redis_url: str, topic: str | None = None) -> Settings:
    topic = topic or f"events-{uuid.uuid4().hex[:10]}"
    storage = {"event_log_url": broker.url(topic), "state_url": redis_url, "catalog_url": redis_url}
    return make_settings(data_dir, storage=storage)


def test_what_one_worker_acknowledges_the_next_request_on_another_reads(
    tmp_path: Path, kafka_broker: KafkaBroker, empty_redis: str
) -> None:
    """Two workers as on two hosts: nothing shared but the broker and Redis (separate data directories)."""
    settings = scaled(tmp_path / "host-a", kafka_broker, empty_redis)
    topic = settings.storage.event_log_url.rsplit("/", 1)[1]
    a, b = build_engine(settings), build_engine(scaled(tmp_path / "host-b", kafka_broker, empty_redis, topic))
    try:
        a.upsert_items([ItemIn(item_id="tent", categories=["camping"]), ItemIn(item_id="stove")])
        a.ingest([EventIn(user_id="u1", item_id="tent", type="view")])
        assert [s.item_id for s in b.user_state("u1").sequence] == ["tent"]
        b.ingest([EventIn(user_id="u1", item_id="stove", type="purchase", event_id="e-1")])
        assert [s.item_id for s in a.user_state("u1").sequence] == ["tent", "stove"]
        # one index of event ids for every worker: a retry through the other worker is stored once
        ack = a.ingest([EventIn(user_id="u1", item_id="stove", type="purchase", event_id="e-1")])
        assert (ack.accepted, ack.duplicates) == (0, 1)
        assert a.event_log.count() == 2
        # item ids, popularity and onboarding preferences are shared too
        b.ingest([EventIn(user_id="u2", item_id="lamp", type="view")])
        assert a.catalog.internal_id("lamp", create=False) == b.catalog.internal_id("lamp", create=False)
        a.set_preferences("u3", ["camping"])
        assert b.user_state("u3").preferences == ["camping"]
        counts = b.trending.counts(len(b.catalog))
        assert counts[b.catalog.internal_id("stove", create=False)] == 1
        # a worker joining later reads the state instead of replaying the log
        c = build_engine(settings)
        try:
            assert c.state.applied()[0] == a.event_log.ends()[0] == 3
            assert [s.item_id for s in c.user_state("u1").sequence] == ["tent", "stove"]
        finally:
            c.close()
        # forgetting a user through one worker forgets them everywhere
        assert a.delete_user("u1") == 2
        with pytest.raises(NotFound):
            b.user_state("u1")
        assert b.event_log.user_events("u1") == []
    finally:
        a.close()
        b.close()


def test_ingest_folds_what_other_producers_write_and_skips_malformed_records(
    tmp_path: Path, kafka_broker: KafkaBroker, empty_redis: str
) -> None:
    from confluent_kafka import Producer

    settings = scaled(tmp_path / "data", kafka_broker, empty_redis)
    engine = build_engine(settings, load_model=False)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    topic = settings.storage.event_log_url.rsplit("/", 1)[1]
    records = [
        json.dumps({"user_id": f"u{n % 5}", "item_id": f"i{n % 7}", "type": "view", "ts": float(n)}).encode()
        for n in range(40)
    ]
    records[10] = b"not json at all"
    records[20] = json.dumps({"user_id": "u1", "item_id": "i1", "type": "teleport", "ts": 1.0}).encode()
    for value in records:
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0
    stop = threading.Event()
    follower = threading.Thread(target=engine.follow, args=(stop,), daemon=True)
    follower.start()
    try:
        wait_for(lambda: engine.event_log.committed(INGEST_GROUP) == (40,), "the ingest consumer to commit offset 40")
        assert engine.skipped_events == 1  # the record that is not an event never reaches the engine
        assert sum(len(engine.state.get(f"u{u}").items) for u in range(5)) > 0
        assert len(engine.state) == 5
        # a second follower (another ingest process, say) folds nothing twice
        other = build_engine(settings, load_model=False)
        try:
            before = {u: engine.state.get(f"u{u}").version for u in range(5)}
            assert other.catch_up() == 0
            assert {u: other.state.get(f"u{u}").version for u in range(5)} == before
        finally:
            other.close()
    finally:
        stop.set()
        follower.join(30)
        engine.close()


def test_workers_on_a_partitioned_topic_fold_every_partition_once(
    tmp_path: Path, kafka_broker: KafkaBroker, empty_redis: str
) -> None:
    """Three partitions, two workers appending concurrently, another producer keying by user id as Kafka's
    Java clients do, and an ingest consumer: each user's sequence is their events in order, every event folded
    once, and every reader's cursor ends at the log's ends."""
    from confluent_kafka import Producer

    topic = f"events-{uuid.uuid4().hex[:10]}?partitions=3"
    a = build_engine(scaled(tmp_path / "host-a", kafka_broker, empty_redis, topic))
    b = build_engine(scaled(tmp_path / "host-b", kafka_broker, empty_redis, topic))
    try:
        assert a.event_log.partitions == b.event_log.partitions == 3
        users = [f"u{n}" for n in range(9)]

        def send(engine, parity: int) -> None:
            for step in range(6):
                mine = users[parity::2]
                engine.ingest([EventIn(user_id=u, item_id=f"i{step}", type="view", ts=float(step)) for u in mine])

        threads = [threading.Thread(target=send, args=(e, k)) for k, e in enumerate((a, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for u in users:  # the very next request on either worker reads all of them, in order
            assert [s.item_id for s in a.user_state(u).sequence] == [f"i{k}" for k in range(6)]
        ends = a.event_log.ends()
        assert len({partition_of(o) for o in ends if local(o)}) > 1  # events spread over partitions
        assert a.state.applied(3) == ends
        # records another service keyed by user id land in the user's partition and are folded by ingest
        producer = Producer({"bootstrap.servers": kafka_broker.bootstrap, "partitioner": "murmur2_random"})
        for u in users:
            value = json.dumps({"user_id": u, "item_id": "i-ext", "type": "view", "ts": 9.0}).encode()
            producer.produce(topic.split("?")[0], key=u.encode(), value=value)
        assert producer.flush(30) == 0
        assert b.catch_up() == len(users)
        assert a.catch_up() == 0  # nothing folded twice
        for u in users:
            assert [s.item_id for s in b.user_state(u).sequence][-2:] == ["i5", "i-ext"]
        assert b.state.applied(3) == b.event_log.ends() and b.health().last_offset == len(users) * 7
    finally:
        a.close()
        b.close()


def test_ingest_command_folds_the_log_once(tmp_path: Path, kafka_broker: KafkaBroker, empty_redis: str) -> None:
    settings = scaled(tmp_path / "data", kafka_broker, empty_redis)
    with build_engine(settings) as writer:
        writer.ingest([EventIn(user_id="u", item_id=f"i{n}", type="view") for n in range(5)])
    env = {
        "FRESHREC_STORAGE__EVENT_LOG_URL": settings.storage.event_log_url,
        "FRESHREC_STORAGE__STATE_URL": settings.storage.state_url,
    }
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "ingest", "--once"], env=env)
    assert result.exit_code == 0, result.output
    assert "applied offset 5;" in result.output


def test_several_workers_need_shared_state(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "serve", "--workers", "2"])
    assert result.exit_code != 0
    assert "redis://" in result.output


@pytest.mark.slow  # two server processes: the second CI stage
def test_two_server_processes_answer_alike_and_swap_versions_on_notification(
    trained: TrainedStore, tmp_path: Path, server_factory, empty_redis: str
) -> None:
    """Two `freshrec serve` processes (as on two hosts) on one Redis: an event acknowledged by one is in the
    very next answer of the other, and a version made current through one is served by both within seconds,
    announced (the registry poll is off), while requests keep succeeding."""
    data = trained.copy_to(tmp_path / "data")
    env = {"FRESHREC_STORAGE__STATE_URL": empty_redis, "FRESHREC_SERVING__MODEL_POLL_S": "600"}
    a = server_factory(data, env=env)
    b = server_factory(data, env=env)
    item = trained.shop.events[0].item_id
    with httpx.Client(timeout=30) as client:
        for n in range(20):
            user = f"fresh-{n}"
            assert client.post(f"{a.url}/v1/events", json={"user_id": user, "item_id": item, "type": "view"}).is_success
            state = client.get(f"{b.url}/v1/users/{user}").json()
            assert [s["item_id"] for s in state["sequence"]] == [item]
            recs = client.get(f"{b.url}/v1/users/{user}/recommendations").json()
            assert recs["source"] == "model" and item not in [r["item_id"] for r in recs["items"]]
        first = client.get(f"{b.url}/v1/model").json()["version"]
        failures: list[int] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=30) as c:
                while not stop.is_set():
                    for url in (a.url, b.url):
                        r = c.get(f"{url}/v1/users/fresh-1/recommendations")
                        if r.status_code != 200:
                            failures.append(r.status_code)

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        try:
            # a second version: the same weights republished, made current through worker A's rollback API
            from freshrec.stores import open_stores

            stores = open_stores(make_settings(data, storage={"state_url": empty_redis}))
            loaded = stores.registry.load()
            second = stores.registry.publish(
                loaded.model, loaded.item_ids, loaded.event_types, {"metrics": {}}, parent=first, make_current=False
            )
            stores.close()
            r = client.post(f"{a.url}/v1/model/reload", json={"version": second})
            assert r.is_success, r.text
            wait_for(
                lambda: client.get(f"{b.url}/v1/model").json()["version"] == second,
                "worker B to swap to the announced version",
                timeout=30,
            )
        finally:
            stop.set()
            loader.join(30)
        assert failures == []

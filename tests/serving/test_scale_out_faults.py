"""Faults of a scaled-out deployment, with real processes and real servers: a worker SIGKILLed under load, Redis
SIGKILLed and restarted, the broker unresponsive. Acknowledged events are never lost, nothing is half-stored,
and everything recovers by itself."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from freshrec.engine import build_engine
from freshrec.events.base import iter_events, open_event_log
from freshrec.schema import EventIn
from tests.conftest import TrainedStore, make_settings, wait_for
from tests.servers import KafkaBroker, RedisServer

pytestmark = pytest.mark.slow


def scaled_env(broker: KafkaBroker, redis_url: str) -> dict[str, str]:
    return {
        "FRESHREC_STORAGE__EVENT_LOG_URL": broker.url(f"events-{uuid.uuid4().hex[:10]}"),
        "FRESHREC_STORAGE__STATE_URL": redis_url,
    }


def poster(client: httpx.Client, url: str) -> Callable[[str, str], httpx.Response]:
    """POSTs user u's view of an item under an event id."""

    def post(event_id: str, item: str) -> httpx.Response:
        body = {"user_id": "u", "item_id": item, "type": "view", "event_id": event_id}
        return client.post(f"{url}/v1/events", json=body)

    return post


def test_sigkill_one_of_two_workers_under_load_loses_no_acknowledged_event(
    tmp_path: Path, server_factory, kafka_broker: KafkaBroker, empty_redis: str
) -> None:
    env = scaled_env(kafka_broker, empty_redis)
    a = server_factory(tmp_path / "data", env=env)
    b = server_factory(tmp_path / "data", env=env)
    acked: list[tuple[str, str, str]] = []  # (event_id, user, item)
    b_failures: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def write(writer: int) -> None:
        with httpx.Client(timeout=30) as client:
            n = 0
            while not stop.is_set():
                server = (a, b)[n % 2]
                event = {"user_id": f"w{writer}-{n % 25}", "item_id": f"i{writer}-{n}", "type": "view"}
                event["event_id"] = f"{writer}-{n}"
                n += 1
                try:
                    r = client.post(f"{server.url}/v1/events", json=event)
                except httpx.TransportError as exc:
                    if server is b:
                        b_failures.append(repr(exc))
                    continue
                if r.status_code == 200:
                    with lock:
                        acked.append((event["event_id"], event["user_id"], event["item_id"]))
                elif server is b:
                    b_failures.append(f"{r.status_code} {r.text}")

    writers = [threading.Thread(target=write, args=(w,), daemon=True) for w in range(4)]
    for t in writers:
        t.start()
    try:
        wait_for(lambda: len(acked) >= 300, "300 acknowledged events on two workers")
        a.kill()
        killed_at = len(acked)
        wait_for(lambda: len(acked) >= killed_at + 300, "300 more on the surviving worker")
    finally:
        stop.set()
        for t in writers:
            t.join(30)
    assert b_failures == []
    with httpx.Client(timeout=30) as client:  # one more event: B folds whatever A logged but did not apply
        assert client.post(f"{b.url}/v1/events", json={"user_id": "last", "item_id": "x", "type": "view"}).is_success
        log = open_event_log(env["FRESHREC_STORAGE__EVENT_LOG_URL"], shared_url=empty_redis)
        try:
            logged = [e.event_id for e in iter_events(log)]
        finally:
            log.close()
        assert len(logged) == len(set(logged))  # nothing stored twice
        assert {eid for eid, _, _ in acked} <= set(logged)  # nothing acknowledged lost
        health = client.get(f"{b.url}/health").json()
        assert health["last_offset"] == len(logged)  # every logged event is in the live state
        for user in {u for _, u, _ in acked}:
            sequence = {s["item_id"] for s in client.get(f"{b.url}/v1/users/{user}").json()["sequence"]}
            assert {item for _, u, item in acked if u == user} <= sequence


def test_redis_killed_and_restarted_state_comes_back_whole(tmp_path: Path, trained: TrainedStore) -> None:
    """Whatever the AOF kept, a worker on the restarted Redis folds the rest from the log (from the applied
    offset Redis kept), and ends with exactly the state a rebuild from the whole log gives."""
    redis_server = RedisServer()
    try:
        data = trained.copy_to(tmp_path / "data")
        settings = make_settings(data, storage={"state_url": redis_server.url})
        with build_engine(settings, load_model=False) as engine:
            extra = [
                EventIn(user_id=f"late-{n % 40}", item_id=trained.shop.items[n % 50].item_id, type="view")
                for n in range(2000)
            ]
            for i in range(0, len(extra), 100):
                engine.ingest(extra[i : i + 100])
            users = engine.state.user_ids()
        redis_server.restart(kill=True)
        with build_engine(settings, load_model=False) as after:
            reference = build_engine(make_settings(data), load_model=False)  # in memory, from the whole log
            try:
                assert after.state.applied()[0] == reference.state.applied()[0]
                assert sorted(after.state.user_ids()) == sorted(users)
                got, want = after.state.get_many(users), reference.state.get_many(users)
                for user, g, w in zip(users, got, want, strict=True):
                    assert g.items.tolist() == w.items.tolist(), user
                    assert g.seen.tolist() == w.seen.tolist(), user
            finally:
                reference.close()
    finally:
        redis_server.stop()


def test_an_unresponsive_broker_answers_503_and_recovers_by_itself(
    tmp_path: Path, server_factory, empty_redis: str
) -> None:
    broker = KafkaBroker()  # its own: this test freezes it
    try:
        env = scaled_env(broker, empty_redis)
        server = server_factory(tmp_path / "data", env=env)
        with httpx.Client(timeout=60) as client:
            post = poster(client, server.url)
            assert post("e1", "a").status_code == 200
            broker.pause()
            try:
                refused = post("e2", "b")
                assert refused.status_code == 503, refused.text
                assert "retry" in refused.json()["detail"]
                # reads do not need the broker
                assert client.get(f"{server.url}/v1/users/u/recommendations").status_code == 200
                assert [s["item_id"] for s in client.get(f"{server.url}/v1/users/u").json()["sequence"]] == ["a"]
            finally:
                broker.resume()
            # the client retries until the broker is back: no restart of anything
            answers: list[int] = []
            wait_for(lambda: answers.append(post("e2", "b").status_code) or answers[-1] == 200, "a 2xx on retry")
            assert set(answers) <= {200, 503}
            assert post("e3", "c").status_code == 200
            assert [s["item_id"] for s in client.get(f"{server.url}/v1/users/u").json()["sequence"]] == ["a", "b", "c"]
        log = open_event_log(env["FRESHREC_STORAGE__EVENT_LOG_URL"], shared_url=empty_redis)
        try:
            assert [e.event_id for e in iter_events(log)] == ["e1", "e2", "e3"]  # e2 once, whatever happened
        finally:
            log.close()
    finally:
        broker.stop()


def test_redis_down_answers_503_then_recovers_by_itself(tmp_path: Path, server_factory) -> None:
    redis_server = RedisServer()  # its own: this test stops it
    try:
        server = server_factory(tmp_path / "data", env={"FRESHREC_STORAGE__STATE_URL": redis_server.url})
        with httpx.Client(timeout=60) as client:
            post = poster(client, server.url)
            assert post("e1", "a").status_code == 200
            redis_server.halt()
            refused = post("e2", "b")
            assert refused.status_code == 503 and "state" in refused.json()["detail"]
            assert client.get(f"{server.url}/v1/users/u/recommendations").status_code == 503
            redis_server.start()
            assert post("e3", "c").status_code == 200
            assert post("e2", "b").json()["duplicates"] == 1  # the log had it: the retry is not stored twice
            sequence = [s["item_id"] for s in client.get(f"{server.url}/v1/users/u").json()["sequence"]]
            assert sequence == ["a", "b", "c"]  # what the log holds, in its order
    finally:
        redis_server.stop()


def test_serve_with_two_workers_answers_consistently(tmp_path: Path, server_factory, empty_redis: str) -> None:
    """`freshrec serve --workers 2` on one port: whichever worker takes a request, it reads what the other
    acknowledged (a fresh connection per request, so the kernel spreads them over both)."""
    server = server_factory(
        tmp_path / "data", env={"FRESHREC_STORAGE__STATE_URL": empty_redis}, args=["--workers", "2"]
    )
    for n in range(40):
        body = {"user_id": f"u{n % 4}", "item_id": f"i{n}", "type": "view"}
        assert httpx.post(f"{server.url}/v1/events", json=body, timeout=30).status_code == 200
        state = httpx.get(f"{server.url}/v1/users/u{n % 4}", timeout=30).json()
        assert state["sequence"][-1]["item_id"] == f"i{n}"
    assert httpx.get(f"{server.url}/health", timeout=30).json()["last_offset"] == 40

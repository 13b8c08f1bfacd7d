"""A real `freshrec serve` process on 127.0.0.1: durability across SIGKILL, idempotency, live updates."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from freshrec.events.base import open_event_log
from tests.conftest import TrainedStore


@pytest.mark.slow
def test_sigkill_right_after_ack_loses_nothing(server_factory, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = server_factory(data_dir)
    acked: list[int] = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for n in range(30):
            body = [{"user_id": f"u{n % 3}", "item_id": f"i{n}", "type": "view", "event_id": f"e{n}"}]
            if n % 5 == 0:  # some batches, some singles
                body.append({"user_id": "batch", "item_id": f"b{n}", "type": "click"})
            r = client.post("/v1/events", json=body)
            assert r.status_code == 200
            acked.extend(r.json()["offsets"])
    server.kill()  # SIGKILL immediately after the last 2xx: no shutdown code runs

    log = open_event_log(f"sqlite:///{data_dir}/events.db")
    stored = {e.offset for e in log.read(0)}
    log.close()
    assert set(acked) <= stored and len(acked) == 36

    restarted = server_factory(data_dir)
    with httpx.Client(base_url=restarted.url, timeout=10) as client:
        # state is rebuilt from the log: every acknowledged view is in its user's sequence
        for u in range(3):
            seq = [e["item_id"] for e in client.get(f"/v1/users/u{u}").json()["sequence"]]
            assert seq == [f"i{n}" for n in range(30) if n % 3 == u]
        assert client.get("/health").json()["last_offset"] == max(acked)
        # a repeated event_id is acknowledged, not stored again
        r = client.post("/v1/events", json={"user_id": "u0", "item_id": "i0", "type": "view", "event_id": "e0"})
        assert r.json() == {"accepted": 0, "duplicates": 1, "offsets": [acked[0]]}
        assert len(client.get("/v1/users/u0").json()["sequence"]) == 10


def test_live_server_reflects_each_event_in_the_next_list(server_factory, trained: TrainedStore, tmp_path) -> None:
    server = server_factory(trained.copy_to(tmp_path / "data"))
    user = trained.shop.events[-1].user_id
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/v1/model").json()["version"] == trained.version
        for _ in range(3):
            top = client.get(f"/v1/users/{user}/recommendations", params={"k": 3}).json()
            assert top["source"] == "model"
            chosen = top["items"][0]["item_id"]
            assert client.post("/v1/events", json={"user_id": user, "item_id": chosen, "type": "view"}).is_success
            after = client.get(f"/v1/users/{user}/recommendations", params={"k": 3}).json()
            assert chosen not in [i["item_id"] for i in after["items"]]
            assert client.get(f"/v1/users/{user}").json()["sequence"][-1]["item_id"] == chosen


def test_serve_runs_its_model_work_on_serving_torch_threads(server_factory, tmp_path: Path) -> None:
    # One intra-op thread by default: on a small machine a second one costs more than it gives (its
    # threads wait on each other whenever the trainer or the HTTP stack holds the other core).
    assert httpx.get(f"{server_factory(tmp_path / 'a').url}/health").json()["torch_threads"] == 1
    two = server_factory(tmp_path / "b", env={"FRESHREC_SERVING__TORCH_THREADS": "2"})
    assert httpx.get(f"{two.url}/health").json()["torch_threads"] == 2


def test_a_client_that_never_finishes_its_headers_is_cut_off(tmp_path: Path, server_factory) -> None:
    server = server_factory(tmp_path / "data", env={"FRESHREC_SECURITY__READ_TIMEOUT_S": "1"})
    host, port = server.url.removeprefix("http://").split(":")
    slow = [socket.create_connection((host, int(port)), timeout=60) for _ in range(3)]
    for s in slow:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")  # and nothing more
    for s in slow:
        assert s.recv(1024) == b""  # the server closed it (recv blocks until then; 60 s bounds a hang)
        s.close()
    assert httpx.get(f"{server.url}/health", timeout=30).status_code == 200  # others are served as ever

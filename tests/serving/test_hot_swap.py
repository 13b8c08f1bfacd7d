"""Version switches under concurrent load, and the embedded online trainer, on a real server."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import TrainedStore, wait_for


def test_repeated_swaps_under_load_fail_no_request(server_factory, trained: TrainedStore, tmp_path: Path) -> None:
    data_dir = trained.copy_to(tmp_path / "data")
    from freshrec.model.registry import ModelRegistry

    registry = ModelRegistry(data_dir / "models")
    base = registry.load()
    versions = [trained.version] + [
        registry.publish(
            base.model,
            base.item_ids,
            base.event_types,
            {"note": f"copy {i}"},
            parent=trained.version,
            make_current=False,
        )
        for i in range(2)
    ]
    server = server_factory(data_dir, online=False)
    users = list(dict.fromkeys(e.user_id for e in trained.shop.events))[:50]
    results: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def hammer(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            n = 0
            while not stop.is_set():
                r = client.get(f"/v1/users/{users[(worker + n) % len(users)]}/recommendations", params={"k": 5})
                results.append((r.status_code, r.json().get("model_version") if r.status_code == 200 else None))
                n += 1

    workers = [threading.Thread(target=hammer, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for swap in range(12):
            r = client.post("/v1/model/reload", json={"version": versions[swap % 3]})
            assert r.status_code == 200 and r.json()["version"] == versions[swap % 3]
            # let requests run on this version before the next swap (progress, not a pause)
            served = len(results)
            wait_for(lambda n=served: len(results) >= n + 8, "requests after a swap")
    stop.set()
    for w in workers:
        w.join()
    assert len(results) > 50
    assert all(status == 200 for status, _ in results), {s for s, _ in results}
    assert {v for _, v in results} <= set(versions) and len({v for _, v in results}) >= 2


def test_embedded_trainer_publishes_and_serving_swaps(server_factory, trained: TrainedStore, tmp_path: Path) -> None:
    data_dir = trained.copy_to(tmp_path / "data")
    server = server_factory(
        data_dir,
        online=True,
        env={
            "FRESHREC_ONLINE__PUBLISH_INTERVAL_S": "0",
            "FRESHREC_ONLINE__MICRO_BATCH_SECONDS": "0.2",
            "FRESHREC_ONLINE__GATE_TOLERANCE": "0.5",
            "FRESHREC_SERVING__MODEL_POLL_S": "0.5",
            # SCHED_IDLE would let other load on a shared CI machine starve the trainer past the deadline;
            # tests/online/test_process.py checks that policy on its own.
            "FRESHREC_ONLINE__SCHED_IDLE": "false",
        },
    )
    items = [it.item_id for it in trained.shop.items]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/v1/model").json()["version"] == trained.version
        deadline = time.monotonic() + 600
        n = 0
        while time.monotonic() < deadline:
            batch = [
                {"user_id": f"live-{(n + j) % 40}", "item_id": items[(n * 7 + j) % len(items)], "type": "view"}
                for j in range(50)
            ]
            assert client.post("/v1/events", json=batch).is_success
            n += 50
            if client.get("/v1/model").json()["version"] != trained.version:
                break
            time.sleep(0.3)
        info = client.get("/v1/model").json()
        assert info["version"] != trained.version, "no online version reached serving in time"
        history = client.get("/v1/model/history").json()
        assert history["versions"][-1]["kind"] == "online" and history["versions"][-1]["parent"]
        assert any(d["accepted"] for d in history["gate_decisions"])
    # The trainer is a child process at a lower CPU priority than the server: online.nice (10) more, up to the
    # ceiling of 19 (a runner that is itself niced leaves less room).
    trainers = [pid for pid in _children(server.proc.pid) if b"trainer" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(trainers) == 1
    server_nice = os.getpriority(os.PRIO_PROCESS, server.proc.pid)
    assert os.getpriority(os.PRIO_PROCESS, trainers[0]) == min(19, server_nice + 10)


def _children(pid: int) -> list[int]:
    """Child processes of ``pid``, from the kernel's per-thread children lists."""
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]

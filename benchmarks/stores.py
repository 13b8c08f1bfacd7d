"""Build benchmark data directories (generated catalogues, users, a model version) and run a server on them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from freshrec.config import load_settings
from freshrec.engine import build_engine
from freshrec.model.sasrec import SASRec
from freshrec.pipeline import model_config
from freshrec.ranking.features import FEATURES
from freshrec.ranking.ranker import Ranker
from freshrec.schema import EventRecord, ItemIn


def build_store(data_dir: Path, n_items: int, n_users: int, events_per_user: int = 50, seed: int = 0) -> dict:
    """A data directory with ``n_items`` items, ``n_users`` users of history and an **untrained** default
    model version with a ranker fitted on random features (latency and memory do not depend on the
    weights' or the trees' values, only on their shapes). Built in a child process, so nothing it starts
    (LightGBM's and torch's thread pools) stays behind in the process that then drives the load."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_build_store, (data_dir, n_items, n_users, events_per_user, seed))


def _build_store(data_dir: Path, n_items: int, n_users: int, events_per_user: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    settings = load_settings(storage={"data_dir": data_dir, "sqlite_synchronous": "NORMAL"})
    engine = build_engine(settings, load_model=False)
    try:
        item_ids = [f"item-{i:07d}" for i in range(n_items)]
        for start in range(0, n_items, 50_000):
            engine.catalog.upsert([ItemIn(item_id=i, title=f"Item {i[5:]}") for i in item_ids[start : start + 50_000]])
        popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
        popularity /= popularity.sum()
        cdf = np.cumsum(popularity)  # rng.choice(p=...) rebuilds this per call: O(items) per user
        cdf[-1] = 1.0
        t0 = 1_700_000_000.0
        batch: list[EventRecord] = []
        for u in range(n_users):
            picks = np.searchsorted(cdf, rng.random(events_per_user), side="right")
            for j, i in enumerate(picks):
                batch.append(EventRecord(0, f"user-{u:07d}", item_ids[i], "view", t0 + u + j * 1e-3))
            if len(batch) >= 50_000:
                engine.append_records(batch)
                batch = []
        if batch:
            engine.append_records(batch)
        model = SASRec(model_config(settings, len(engine.catalog), len(engine.types)))
        version = engine.registry.publish(
            model,
            engine.catalog.external_ids(),
            engine.types.names,
            {"note": "untrained, ranker fitted on random features: for latency and memory benchmarks"},
            ranker=shaped_ranker(seed).to_text(),
        )
    finally:
        engine.close()
    return {"items": n_items, "users": n_users, "events": n_users * events_per_user, "version": version}


def shaped_ranker(seed: int = 0) -> Ranker:
    """A ranker of the shipped shape (its rounds and leaves) fitted on random requests."""
    rng = np.random.default_rng(seed)
    groups = [200] * 100
    x = rng.normal(size=(sum(groups), len(FEATURES))).astype(np.float32)
    y = (rng.random(len(x)) < 0.01).astype(np.float32)
    y[:: groups[0]] = 1.0
    return Ranker.fit(x, y, groups, seed=seed)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`freshrec serve` in a child process; ``env`` adds FRESHREC_* settings."""

    def __init__(
        self, data_dir: Path, env: dict[str, str] | None = None, online: bool = False, args: list[str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A file, not a pipe: nobody drains a pipe while the benchmark runs, and a full one blocks the server.
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        self.log_path = Path(data_dir) / f"server-{self.port}.log"
        self._log = self.log_path.open("wb")
        cmd = [sys.executable, "-m", "freshrec.cli", "--data-dir", str(data_dir), "serve", "--port", str(self.port)]
        cmd.append("--insecure")  # loopback only: the load driver measures serving, not key checks
        cmd.append("--online" if online else "--no-online")
        cmd += args or []
        self.proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=self._log, stderr=subprocess.STDOUT)
        # a 1M-item store takes minutes to start (state rebuild, HNSW build), many more on a shared machine
        deadline = time.monotonic() + 2400
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not start")

    def rss_mb(self) -> float:
        """Peak resident memory of the server process (VmHWM), in MiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def log(self, tail: int = 4000) -> str:
        """The last ``tail`` characters the server wrote."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-tail:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

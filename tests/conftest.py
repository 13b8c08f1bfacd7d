"""Shared fixtures: settings on a temp dir, a small generated shop, a trained model, a live server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from freshrec.config import Settings, load_settings
from freshrec.datasets.synthetic import SyntheticShop, generate_shop
from freshrec.engine import Engine, build_engine
from tests.servers import KafkaBroker, RedisServer, free_port

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Tests talk to the API without keys (servers bind loopback only); the tests of access control turn keys on
# in their own settings (tests/serving/test_security.py), which win over this variable.
os.environ.setdefault("FRESHREC_SECURITY__AUTH", "false")


def make_settings(data_dir: Path, **sections: dict) -> Settings:
    """Fast settings for tests: a small model and short training on CPU."""
    base = {
        "storage": {"data_dir": data_dir},
        "model": {"dim": 32, "heads": 2, "layers": 1, "max_len": 50, "dropout": 0.2},
        "train": {"epochs": 40, "patience": 4, "lr": 3e-3, "device": "cpu", "compile": "off", "batch_size": 64},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return load_settings(**base)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = build_engine(settings)
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def shop() -> SyntheticShop:
    return generate_shop(n_users=400, n_items=120, n_categories=8, sessions_per_user=(6, 14), seed=3)


@dataclass
class TrainedStore:
    """A data directory holding the shop's events, its items and one trained model version."""

    data_dir: Path
    shop: SyntheticShop
    metrics: dict
    version: str

    def copy_to(self, dest: Path) -> Path:
        shutil.copytree(self.data_dir, dest)
        return dest


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, shop: SyntheticShop) -> TrainedStore:
    from freshrec.pipeline import train_and_publish

    data_dir = tmp_path_factory.mktemp("trained") / "data"
    eng = build_engine(make_settings(data_dir))
    try:
        eng.upsert_items(shop.items)
        for i in range(0, len(shop.events), 1000):
            eng.ingest(shop.events[i : i + 1000])
        report = train_and_publish(eng.stores, progress=False)
    finally:
        eng.close()
    return TrainedStore(data_dir, shop, report.metrics, report.version)


@pytest.fixture
def trained_engine(trained: TrainedStore, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a private copy of the trained store (tests may write to it)."""
    eng = build_engine(make_settings(trained.copy_to(tmp_path / "data")))
    yield eng
    eng.close()


def wait_for(condition, what: str, timeout: float = 300.0) -> None:
    """Poll an observable condition (a file, a line of output, a count) until it holds; tests wait on state,
    never for a fixed time. ``timeout`` only bounds a hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class ServerProcess:
    """``freshrec serve`` as a real child process on 127.0.0.1 (started and always stopped by tests)."""

    def __init__(
        self, data_dir: Path, online: bool = False, env: dict[str, str] | None = None, args: Sequence[str] = ()
    ) -> None:
        self.data_dir = data_dir
        self.online = online
        self.extra_env = env or {}
        self.args = list(args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> ServerProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.extra_env}
        # output goes to a file: a pipe nobody reads could fill up and block the server
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the server process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "freshrec.cli",
                "--data-dir",
                str(self.data_dir),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--online" if self.online else "--no-online",
                *self.args,
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not become healthy")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if self.proc is not None:
            self._log.close()


@pytest.fixture
def server_factory() -> Iterator:
    started: list[ServerProcess] = []

    def start(
        data_dir: Path, online: bool = False, env: dict[str, str] | None = None, args: Sequence[str] = ()
    ) -> ServerProcess:
        server = ServerProcess(data_dir, online, env, args)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real ``redis-server`` for the session (tests that share it start from :func:`empty_redis`)."""
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def empty_redis(redis_server: RedisServer) -> str:
    """The URL of the session's Redis, emptied for this test."""
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    return redis_server.url


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """One real Kafka-protocol broker (tansu) for the session; each test uses topics of its own."""
    broker = KafkaBroker()
    yield broker
    broker.stop()

"""The embedded trainer's child process: the CPU priority it runs at, and its supervision by the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from freshrec.online.process import _lower_priority
from tests.conftest import wait_for


def _lowered(niceness: int) -> int:
    """The niceness a child of this process gets with ``niceness`` more: capped at 19 when this runner is
    itself niced."""
    return min(19, os.getpriority(os.PRIO_PROCESS, 0) + niceness)


def _spawn(niceness: int, sched_idle: bool) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"], preexec_fn=_lower_priority(niceness, sched_idle)
    )


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux-only")
def test_trainer_runs_under_sched_idle_and_niceness() -> None:
    proc = _spawn(10, True)
    try:
        assert os.sched_getscheduler(proc.pid) == os.SCHED_IDLE
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == _lowered(10)
    finally:
        proc.kill()
        proc.wait()


def test_niceness_alone_when_sched_idle_is_off() -> None:
    proc = _spawn(5, False)
    try:
        assert os.sched_getscheduler(proc.pid) == os.sched_getscheduler(0)
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == _lowered(5)
    finally:
        proc.kill()
        proc.wait()


def test_no_preexec_hook_when_nothing_is_lowered() -> None:
    assert _lower_priority(0, False) is None


def test_serve_restarts_a_dead_trainer_and_reports_it(tmp_path: Path, server_factory) -> None:
    """SIGKILL the trainer `freshrec serve` started: the server reaps it, starts a new one, and says so in
    /health and /metrics."""
    server = server_factory(tmp_path / "data", online=True)

    def trainer() -> dict:
        return httpx.get(f"{server.url}/health", timeout=30).json()["trainer"] or {}

    wait_for(lambda: trainer().get("state") == "running", "the trainer to start")
    first = trainer()
    os.kill(first["pid"], signal.SIGKILL)
    wait_for(lambda: trainer().get("restarts") == 1 and trainer().get("state") == "running", "a restarted trainer")
    again = trainer()
    assert again["pid"] != first["pid"]
    with pytest.raises(ProcessLookupError):  # reaped, not left a zombie
        os.kill(first["pid"], 0)
    metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert "freshrec_trainer_restarts 1.0" in metrics and "freshrec_trainer_running 1.0" in metrics

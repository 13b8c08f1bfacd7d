"""The embedded trainer's child process: the CPU priority it runs at."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from freshrec.online.process import _lower_priority


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

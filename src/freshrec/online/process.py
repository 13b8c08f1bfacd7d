"""The online trainer as a child process of `freshrec serve`: the embedded default.

A separate process (at lower CPU priority) keeps training off the serving threads and out of the
server's interpreter lock; it talks to the server only through the event log and the model registry.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from freshrec.config import Settings

log = logging.getLogger(__name__)


class TrainerProcess:
    """Starts ``freshrec trainer`` with the same global options; stops it with the server."""

    def __init__(self, cli_options: dict[str, Any]) -> None:
        self.cli_options = cli_options
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "freshrec.cli"]
        if self.cli_options.get("config") is not None:
            cmd += ["--config", str(self.cli_options["config"])]
        if self.cli_options.get("data_dir") is not None:
            cmd += ["--data-dir", str(self.cli_options["data_dir"])]
        return [*cmd, "trainer", "--exit-with-parent", str(os.getpid())]

    def start(self, settings: Settings) -> None:
        self.proc = subprocess.Popen(
            self.command(), preexec_fn=_lower_priority(settings.online.nice, settings.online.sched_idle)
        )
        log.info("online trainer started (pid %d)", self.proc.pid)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _lower_priority(niceness: int, sched_idle: bool) -> Callable[[], None] | None:
    """What the child runs before exec: SCHED_IDLE where the OS has it, else (and also) ``nice``.

    Niceness alone still lets the trainer hold a core for a scheduler slice when a serving thread (or one
    of its OpenMP workers) wakes up; that wait lands in the serving p99. SCHED_IDLE tasks are preempted at
    once, and still use every idle cycle, so the trainer's throughput on an idle machine is unchanged.
    """
    use_idle = sched_idle and hasattr(os, "SCHED_IDLE")
    if not niceness and not use_idle:
        return None

    def lower() -> None:
        if niceness:
            os.nice(niceness)
        if use_idle:
            # A sandbox may forbid it: niceness is then the fallback.
            with contextlib.suppress(OSError):
                os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))

    return lower


def watch_parent(pid: int, stop: threading.Event, interval: float = 1.0) -> threading.Thread:
    """Set ``stop`` when process ``pid`` is gone (the server was killed), so no trainer is orphaned."""

    def watch() -> None:
        while not stop.wait(interval):
            if os.getppid() != pid:
                stop.set()

    thread = threading.Thread(target=watch, name="freshrec-parent-watch", daemon=True)
    thread.start()
    return thread

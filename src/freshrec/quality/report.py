"""The guard's report on disk: the online trainer writes it, every API process reads it.

The trainer and the API are separate processes (as with ``trainer-status.json``), so the report travels as
one JSON file in the data directory, replaced atomically: a reader sees the previous report or the next,
never half of one.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

#: The file in the data directory that holds the guard's newest report.
QUALITY_REPORT = "quality.json"


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Replace the report at ``path`` with ``report`` plus the wall time it was written (``updated_at``).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / QUALITY_REPORT
    >>> write_report(path, {"users": {"flagged": 2}})
    >>> read_report(path)["users"]
    {'flagged': 2}
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps({**report, "updated_at": time.time()}))
    os.replace(tmp, path)


def read_report(path: Path) -> dict[str, Any] | None:
    """The newest report, or ``None`` when no trainer has written one (or the file is not a report)."""
    try:
        report = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return report if isinstance(report, dict) else None

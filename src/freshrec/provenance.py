"""What a result file records beside its figures: the machine, the versions, the date, the git commit and
the settings that differ from the defaults, so a figure can be traced to what produced it."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit(where: Path | None = None) -> str:
    """The short commit of the checkout ``where`` (default: this package's), or ``"unknown"``."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=where or Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("freshrec")
    except PackageNotFoundError:
        return "unknown"


def describe(where: Path | None = None) -> dict[str, Any]:
    """The machine and versions a result was produced with.

    >>> sorted(describe())[:4]
    ['cores', 'cpu', 'cuda', 'date']
    """
    import numpy
    import torch

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "freshrec": _version(),
        "git_commit": git_commit(where),
    }

"""What every benchmark records beside its figures: machine, versions, date, git commit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from freshrec import provenance

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def describe() -> dict[str, Any]:
    return provenance.describe(ROOT)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": describe(), **payload}, indent=2, default=str) + "\n")
    print(f"wrote {path}")

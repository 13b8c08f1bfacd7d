"""The RecBole comparison's ratio line divides by the right training time.

RecBole itself is not installed here (the benchmark builds its own virtualenv); these read the
standard-library part of the script on hand-made records.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def load_script() -> Any:
    spec = importlib.util.spec_from_file_location("recbole_sasrec", ROOT / "benchmarks" / "peers" / "recbole_sasrec.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(resumed_at: int | None) -> dict[str, Any]:
    # Four epochs: two in an earlier, contended sitting (400 s each), two in the last one (200 s each).
    return {
        "seconds": {"fit": 410.0, "train_epochs_total": 1200.0, "valid_total": 10.0},
        "epoch_seconds": [400.0, 400.0, 200.0, 200.0],
        "epochs_run": 4,
        "resumed_at_epoch": resumed_at,
    }


def test_a_single_sitting_divides_by_its_fit_time() -> None:
    script = load_script()
    assert script.time_ratio(record(None), {"train_seconds": 41.0}) == "0.10x"


def test_a_resumed_run_divides_by_the_whole_run_not_the_last_sitting() -> None:
    script = load_script()
    line = script.time_ratio(record(2), {"train_seconds": 81.0})
    # fastest pace: 4 epochs x 200 s + 10 s validation = 810 s; measured sum 1,210 s; last sitting 410 s.
    assert line.startswith("0.10x of RecBole's 4 epochs at its fastest epoch's pace (810 s)")
    assert "0.07x of their measured sum over sittings (1210 s)" in line
    assert line.endswith("0.20x of its last sitting alone (410 s)")

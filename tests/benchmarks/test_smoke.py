"""Each benchmark runs for a second or two on tiny data, so the scripts cannot rot.

These check that the scripts run and write their JSON; the figures themselves are in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each script starts a fresh interpreter and trains: the second CI stage

ROOT = Path(__file__).resolve().parents[2]

SCRIPTS = [
    ("serving_latency.py", ["--quick"]),
    ("ingest.py", ["--quick"]),
    ("freshness.py", ["--quick"]),
    ("memory.py", ["--quick"]),
    ("train_speed.py", ["--quick"]),
    ("online_trainer.py", ["--quick"]),
    ("offline_quality.py", ["--dataset", "tiny-shop", "--set", "train.epochs=2", "--set", "model.dim=16"]),
    ("cold_start.py", ["--quick"]),
    ("diversity.py", ["--dataset", "tiny-shop", "--set", "train.epochs=2", "--set", "model.dim=16"]),
    ("startup.py", ["--quick"]),
    ("scale_out.py", ["--quick"]),
    ("objectives.py", ["--quick"]),
    ("data_guard.py", ["--quick"]),
    ("compression.py", ["--quick"]),
    ("dashboard.py", ["--quick"]),
]


@pytest.mark.parametrize(("script", "args"), SCRIPTS, ids=[s for s, _ in SCRIPTS])
def test_benchmark_runs_on_tiny_data(script: str, args: list[str], tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["machine"]["cores"] >= 1 and result["machine"]["torch"]

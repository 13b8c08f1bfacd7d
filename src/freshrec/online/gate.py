"""The quality gate: a candidate version is published only if it is not worse than the current one,
beyond a tolerance, on the newest events (that neither has trained on) and on a fixed older holdout
(forgetting). Every decision is appended to ``<model_dir>/gate_log.jsonl`` with its figures."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from freshrec.eval.offline import evaluate_scorer, model_scorer
from freshrec.model.data import EvalSet
from freshrec.model.sasrec import SASRec

GATE_METRIC = "ndcg@10"


@dataclass
class GateDecision:
    """Outcome of one comparison; ``figures[set][model]`` holds the metrics that decided it."""

    accepted: bool
    reason: str
    tolerance: float
    figures: dict[str, dict[str, dict[str, float]]]
    current_version: str | None
    candidate_version: str | None = None
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    context: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    candidate: SASRec,
    current: SASRec | None,
    holdouts: dict[str, EvalSet],
    tolerance: float,
    current_version: str | None,
) -> GateDecision:
    """Accept when, on every holdout, candidate NDCG@10 >= (1 - tolerance) x current NDCG@10.

    Holdouts are in the candidate's row space; with no current model the candidate is accepted.
    Empty holdouts are skipped (and named in the reason).
    """
    figures: dict[str, dict[str, dict[str, float]]] = {}
    failures, skipped = [], []
    for name, data in holdouts.items():
        if not len(data):
            skipped.append(name)
            continue
        cand = evaluate_scorer(model_scorer(candidate), data, ks=(10,))
        figures[name] = {"candidate": cand}
        if current is None:
            continue
        cur = evaluate_scorer(model_scorer(current), _clip_rows(data, current.num_items), ks=(10,))
        figures[name]["current"] = cur
        if cand[GATE_METRIC] < (1 - tolerance) * cur[GATE_METRIC]:
            failures.append(
                f"{name} {GATE_METRIC} {cand[GATE_METRIC]:.4f} < {1 - tolerance:.2f} x {cur[GATE_METRIC]:.4f}"
            )
    if current is None:
        reason = "no current version"
    elif failures:
        reason = "worse than current: " + "; ".join(failures)
    else:
        reason = f"not worse than current beyond {tolerance:.0%} on " + ", ".join(figures) if figures else "no holdout"
    if skipped:
        reason += f" (empty holdouts skipped: {', '.join(skipped)})"
    return GateDecision(not failures, reason, tolerance, figures, current_version)


def _clip_rows(data: EvalSet, num_items: int) -> EvalSet:
    """The current model may know fewer items (new rows were grown since): map unknown rows to 0."""
    import numpy as np

    def clip(a: np.ndarray) -> np.ndarray:
        return np.where(a <= num_items, a, 0)

    items = [clip(s) for s in data.items]
    keep = [s > 0 for s in items]
    return EvalSet(
        data.users,
        [s[k] for s, k in zip(items, keep, strict=True)],
        [t[k] for t, k in zip(data.types, keep, strict=True)],
        clip(data.targets),
    )


class GateLog:
    """Append-only JSON-lines record of gate decisions."""

    def __init__(self, model_dir: Path) -> None:
        self.path = Path(model_dir) / "gate_log.jsonl"
        self._lock = threading.Lock()

    def append(self, decision: GateDecision) -> None:
        line = json.dumps(decision.to_dict(), separators=(",", ":"))
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read(self, limit: int | None = None) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        out = []
        for line in lines[-limit:] if limit else lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a torn last line after a crash is skipped, not fatal
                continue
        return out

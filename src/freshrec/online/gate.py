"""The quality gate: a candidate version is published only if it is not worse than the current one,
beyond a tolerance, on the newest events (that neither has trained on) and on a fixed older holdout
(forgetting). Every decision is appended to ``<model_dir>/gate_log.jsonl`` with its figures.

Both models are scored on the same users, so the gate can tell a real loss from sampling noise: with
``noise_z`` > 0 a candidate is held back only when its NDCG@10 is below ``(1 - tolerance)`` x the
current one by more than ``noise_z`` standard errors of the paired per-user difference. The per-batch
holdouts are a few hundred users; with ``noise_z`` = 0 the replay showed the gate rejecting most
candidates on noise alone (docs/benchmarks.md, section 6).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from freshrec.eval.metrics import ndcg_gains, summarize
from freshrec.eval.offline import model_scorer, target_ranks
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


#: a model and its catalogue-index -> row translation
Contender = tuple[SASRec, Callable[[np.ndarray], np.ndarray]]


def compare(
    candidate: Contender,
    current: Contender | None,
    holdouts: dict[str, EvalSet],
    tolerance: float,
    current_version: str | None,
    noise_z: float = 0.0,
) -> GateDecision:
    """Accept when, on every holdout, candidate NDCG@10 >= (1 - tolerance) x current NDCG@10 - noise_z x SE,
    SE being the standard error of the mean per-user difference (candidate - current).

    Holdouts are in catalogue indices; each model is scored in its own row space (an item it has no row
    for cannot be recommended by it). With no current model the candidate is accepted; empty holdouts
    are skipped and named in the reason.
    """
    figures: dict[str, dict[str, dict[str, float]]] = {}
    failures, skipped = [], []
    for name, data in holdouts.items():
        if not len(data):
            skipped.append(name)
            continue
        cand_ranks = _ranks(candidate, data)
        figures[name] = {"candidate": summarize(cand_ranks, (10,))}
        if current is None:
            continue
        cur_ranks = _ranks(current, data)
        figures[name]["current"] = summarize(cur_ranks, (10,))
        cand, cur = figures[name]["candidate"][GATE_METRIC], figures[name]["current"][GATE_METRIC]
        diff = ndcg_gains(cand_ranks, 10) - ndcg_gains(cur_ranks, 10)
        se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
        figures[name]["paired"] = {"mean_diff": float(diff.mean()), "se": se, "n": float(len(diff))}
        bar = (1 - tolerance) * cur - noise_z * se
        if cand < bar:
            noise = f" - {noise_z:g} x SE {se:.4f}" if noise_z else ""
            failures.append(f"{name} {GATE_METRIC} {cand:.4f} < {1 - tolerance:.2f} x {cur:.4f}{noise}")
    if current is None:
        reason = "no current version"
    elif failures:
        reason = "worse than current: " + "; ".join(failures)
    elif figures:
        noise = f" (allowing {noise_z:g} SE of noise)" if noise_z else ""
        reason = f"not worse than current beyond {tolerance:.0%}{noise} on " + ", ".join(figures)
    else:
        reason = "no holdout to judge on"
    if skipped:
        reason += f" (empty holdouts skipped: {', '.join(skipped)})"
    return GateDecision(not failures, reason, tolerance, figures, current_version)


def _ranks(contender: Contender, data: EvalSet) -> np.ndarray:
    model, rows = contender
    return target_ranks(model_scorer(model), data.remap(rows))  # the scorer runs the model in eval mode


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

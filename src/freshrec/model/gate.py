"""The quality gate: a candidate version is published only if it is not worse than the current one,
beyond a tolerance, on the newest events (that neither has trained on) and on a fixed older holdout
(forgetting). Every decision is appended to ``<model_dir>/gate_log.jsonl`` with its figures.

Both models are scored on the same users, so the gate can tell a real loss from sampling noise: with
``noise_z`` > 0 a candidate is held back only when its NDCG@10 is below ``(1 - tolerance)`` x the
current one by more than ``noise_z`` standard errors of the paired per-user difference. The per-batch
holdouts are a few hundred users; with ``noise_z`` = 0 the replay showed the gate rejecting most
candidates on noise alone.

Comparing only with the current version lets forgetting ratchet: each version may lose a little
(tolerance + noise) to its parent, and the losses compound down the lineage (the ML-100K replay lost 38%
of the older holdout's NDCG@10 that way over 14 accepted versions). So a holdout can also carry an
:class:`Anchor`, the per-user gains of the lineage's first version, fixed when the holdout was drawn;
the candidate must then clear the same bar against the anchor too, which bounds the total loss.
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

from freshrec.metrics import ndcg_gains, paired_difference, summarize
from freshrec.model.data import EvalSet
from freshrec.model.evaluate import model_scorer, target_ranks
from freshrec.model.sasrec import SASRec

GATE_METRIC = "ndcg@10"
#: Standard errors of noise a candidate is allowed below the bar (one-sided 95%): the per-batch holdouts are
#: a few hundred users, and with no allowance the gate rejected most candidates on sampling noise alone.
NOISE_Z = 1.64


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
    behind_lineage: bool = False  # failed against the lineage's first version (drift, not a noisy batch)
    # per-query ranks behind the figures, {"candidate" | "current": {holdout: ranks}}; not logged
    ranks: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("ranks")
        return out


#: a model and its catalogue-index -> row translation
Contender = tuple[SASRec, Callable[[np.ndarray], np.ndarray]]


@dataclass(frozen=True)
class Anchor:
    """A fixed reference on one holdout: the version it was scored with and its per-user NDCG@10 gains
    (in the holdout's user order), so later candidates get a paired comparison without rescoring it."""

    version: str
    gains: np.ndarray

    @classmethod
    def score(cls, version: str, contender: Contender, data: EvalSet) -> Anchor:
        """Score ``contender`` on ``data`` once.

        >>> anchor = Anchor.score("v1", (model, rows), older)  # doctest: +SKIP
        """
        return cls.from_ranks(version, holdout_ranks(contender, data))

    @classmethod
    def from_ranks(cls, version: str, ranks: np.ndarray) -> Anchor:
        """The anchor of a version whose ranks on the holdout (:func:`holdout_ranks`) are known."""
        return cls(version, ndcg_gains(ranks, 10))

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "gains": self.gains.tolist()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Anchor:
        return cls(str(raw["version"]), np.asarray(raw["gains"], dtype=np.float64))


def compare(
    candidate: Contender,
    current: Contender | None,
    holdouts: dict[str, EvalSet],
    tolerance: float,
    current_version: str | None,
    noise_z: float = 0.0,
    anchors: dict[str, Anchor] | None = None,
    current_ranks: dict[str, np.ndarray] | None = None,
) -> GateDecision:
    """Accept when, on every holdout, candidate NDCG@10 >= (1 - tolerance) x current NDCG@10 - noise_z x SE,
    SE being the standard error of the mean per-user difference (candidate - current), and the same
    against ``anchors[name]`` where a holdout has one (the lineage's first version: no ratchet).

    Holdouts are in catalogue indices; each model is scored in its own row space (an item it has no row
    for cannot be recommended by it). With no current model only the anchors can reject a candidate;
    empty holdouts are skipped and named in the reason. ``current_ranks[name]``: the current version's
    ranks on a holdout, scored before (the fixed older holdout needs scoring once per current version).

    >>> decision = compare((cand, rows), (cur, rows), {"older": older}, 0.01, "v3", 1.64)  # doctest: +SKIP
    >>> decision.accepted, decision.reason  # doctest: +SKIP
    """
    figures: dict[str, dict[str, dict[str, float]]] = {}
    failures: list[str] = []
    lineage_failures: list[str] = []
    skipped = []
    anchors = anchors or {}
    known = current_ranks or {}
    ranks: dict[str, dict[str, np.ndarray]] = {"candidate": {}, "current": {}}
    for name, data in holdouts.items():
        if not len(data):
            skipped.append(name)
            continue
        cand_ranks = ranks["candidate"][name] = holdout_ranks(candidate, data)
        cand_gains = ndcg_gains(cand_ranks, 10)
        figures[name] = {"candidate": summarize(cand_ranks, (10,))}
        cand = figures[name]["candidate"][GATE_METRIC]
        anchor = anchors.get(name)
        if anchor is not None and len(anchor.gains) == len(data):
            ref = float(anchor.gains.mean())
            paired = _paired(cand_gains, anchor.gains, data.users)
            figures[name]["anchor"] = {GATE_METRIC: ref}
            figures[name]["paired_anchor"] = paired
            if cand < (1 - tolerance) * ref - noise_z * paired["se"]:
                lineage_failures.append(_shortfall(name, cand, ref, tolerance, noise_z, paired["se"], anchor.version))
        if current is None:
            continue
        cur_ranks = known.get(name)
        if cur_ranks is None or len(cur_ranks) != len(data):
            cur_ranks = holdout_ranks(current, data)
        ranks["current"][name] = cur_ranks
        figures[name]["current"] = summarize(cur_ranks, (10,))
        cur = figures[name]["current"][GATE_METRIC]
        paired = figures[name]["paired"] = _paired(cand_gains, ndcg_gains(cur_ranks, 10), data.users)
        if cand < (1 - tolerance) * cur - noise_z * paired["se"]:
            failures.append(_shortfall(name, cand, cur, tolerance, noise_z, paired["se"]))
    noise = f" (allowing {noise_z:g} SE of noise)" if noise_z else ""
    if failures or lineage_failures:
        parts = []
        if failures:
            parts.append("worse than current: " + "; ".join(failures))
        if lineage_failures:
            parts.append("worse than the lineage's first version: " + "; ".join(lineage_failures))
        reason = "; ".join(parts)
    elif current is None:
        reason = "no current version"
    elif figures:
        reason = f"not worse than current beyond {tolerance:.0%}{noise} on " + ", ".join(figures)
        anchored = [f"{n} ({anchors[n].version})" for n in figures if "anchor" in figures[n]]
        if anchored:
            reason += "; nor than the lineage's first version on " + ", ".join(anchored)
    else:
        reason = "no holdout to judge on"
    if skipped:
        reason += f" (empty holdouts skipped: {', '.join(skipped)})"
    return GateDecision(
        not (failures or lineage_failures),
        reason,
        tolerance,
        figures,
        current_version,
        behind_lineage=bool(lineage_failures),
        ranks=ranks,
    )


def compare_ranks(
    holdout: str,
    candidate: np.ndarray,
    current: np.ndarray,
    users: list[str],
    tolerance: float,
    current_version: str | None,
    noise_z: float = 0.0,
) -> GateDecision:
    """The same rule as :func:`compare` on one holdout whose ranks are already known: for a ranker, judged on
    the newest requests (which neither ranker was fitted on) by the chosen item's rank among the candidates.

    >>> d = compare_ranks("newest", np.array([0, 1, 3]), np.array([0, 0, 2]), ["a", "b", "c"], 0.01, "v2", 1.64)
    >>> d.accepted, d.figures["newest"]["paired"]["n"]
    (True, 3.0)
    >>> compare_ranks("newest", np.array([9, 9, 9]), np.array([0, 0, 0]), ["a", "b", "c"], 0.01, "v2").accepted
    False
    """
    cand_sum, cur_sum = summarize(candidate, (10,)), summarize(current, (10,))
    paired = _paired(ndcg_gains(candidate, 10), ndcg_gains(current, 10), users)
    figures = {holdout: {"candidate": cand_sum, "current": cur_sum, "paired": paired}}
    cand, cur = cand_sum[GATE_METRIC], cur_sum[GATE_METRIC]
    accepted = bool(len(candidate)) and cand >= (1 - tolerance) * cur - noise_z * paired["se"]
    noise = f" (allowing {noise_z:g} SE of noise)" if noise_z else ""
    if not len(candidate):
        reason = "no holdout to judge on"
    elif accepted:
        reason = f"not worse than current beyond {tolerance:.0%}{noise} on {holdout}"
    else:
        reason = "worse than current: " + _shortfall(holdout, cand, cur, tolerance, noise_z, paired["se"])
    ranks = {"candidate": {holdout: candidate}, "current": {holdout: current}}
    return GateDecision(accepted, reason, tolerance, figures, current_version, ranks=ranks)


def _paired(candidate: np.ndarray, reference: np.ndarray, users: list[str]) -> dict[str, float]:
    """The paired per-user difference the gate allows noise for (see :func:`paired_difference`)."""
    d = paired_difference(candidate, reference, users)
    return {key: d[key] for key in ("mean_diff", "se", "n", "users")}


def _shortfall(
    name: str, cand: float, ref: float, tolerance: float, noise_z: float, se: float, version: str | None = None
) -> str:
    noise = f" - {noise_z:g} x SE {se:.4f}" if noise_z else ""
    of = f" ({version})" if version else ""
    return f"{name} {GATE_METRIC} {cand:.4f} < {1 - tolerance:.2f} x {ref:.4f}{of}{noise}"


def holdout_ranks(contender: Contender, data: EvalSet) -> np.ndarray:
    """0-based rank of each holdout query's target under one contender (full ranking, seen items
    filtered), scored in the contender's own row space."""
    model, rows = contender
    # the scorer runs the model in eval mode
    return target_ranks(model_scorer(model), data.remap(rows), max_len=model.config.max_len)


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

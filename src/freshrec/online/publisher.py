"""The online trainer's publishing job: holdouts, the quality gate, publishing, and the resync.

A candidate (the trainer's working weights) is judged against the current version on two holdouts that
neither has trained on (:func:`~freshrec.model.gate.compare`):

* **recent**: each user's first new-to-them positive event of the micro-batch being judged, scored from
  the history before it (prequential);
* **older** (forgetting): a fixed sample of users' last entries as of the lineage's start. The candidate
  must also clear the lineage's first version there (the anchor), so per-version losses inside the
  tolerance cannot compound.

An accepted candidate is published as an ``online`` version whose metadata records the offsets it was
trained on. After :data:`RESYNC_AFTER` rejections in a row for falling behind the anchor, the working
weights have drifted where the gate will not follow: they restart from the served version.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from freshrec.catalog.base import Catalog
from freshrec.model.data import EvalSet
from freshrec.model.gate import NOISE_Z, Anchor, Contender, GateDecision, GateLog, compare, holdout_ranks
from freshrec.model.registry import ModelRegistry
from freshrec.model.rowmap import RowMap
from freshrec.online.checkpoint import CheckpointStore, TrainerState
from freshrec.online.learner import History, Learner, grow
from freshrec.position import to_json
from freshrec.schema import EventRecord
from freshrec.sequence import EventTypes, Sequences

log = logging.getLogger(__name__)

#: Users in the recent holdout of one gate decision.
RECENT_USERS = 500
#: Users in the fixed older holdout (at most a fifth of the users: the rest stay available to replay).
OLDER_USERS = 1000
#: Gate rejections in a row, for falling behind the lineage's first version, before the weights restart.
RESYNC_AFTER = 3


class Publisher:
    """Judges the trainer's working model and publishes it when the gate accepts (module docstring).

    Parameters
    ----------
    registry, catalog, types
        Where versions are published, the catalogue their id maps refer to, the event-type registry.
    checkpoints
        Where the lineage's older holdout is kept (it must survive restarts to stay fixed).
    tolerance
        ``online.gate_tolerance``.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        catalog: Catalog,
        types: EventTypes,
        checkpoints: CheckpointStore,
        tolerance: float,
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        self.types = types
        self.checkpoints = checkpoints
        self.tolerance = tolerance
        self.gate_log = GateLog(registry.root)
        self.rejections = 0
        self._current: tuple[str, Contender] | None = None
        # the current version's ranks on the older holdout: scored once per version, not per decision
        self._older_ranks: tuple[str, np.ndarray] | None = None
        self.older_holdout: dict[str, Any] = {}
        self.older_users: set[str] = set()

    # ---- holdouts --------------------------------------------------------------------------------

    def open_older_holdout(self, sequences: Sequences, rng: np.random.Generator) -> None:
        """Load the lineage's older holdout, or draw it from ``sequences`` and score its anchor once."""
        self.older_holdout = self.checkpoints.load_holdout() or _draw_older_holdout(sequences, rng)
        if "anchor" not in self.older_holdout:
            version, contender = self.current()
            if version is None or contender is None:
                raise RuntimeError("the online trainer needs a current model version to anchor its holdout")
            ranks = holdout_ranks(contender, self.older_eval_set())
            self.older_holdout["anchor"] = Anchor.from_ranks(version, ranks).to_dict()
            self.checkpoints.save_holdout(self.older_holdout)
            self._older_ranks = (version, ranks)  # the first gate decision needs them too
        self.anchor = Anchor.from_dict(self.older_holdout["anchor"])
        self.older_users = set(self.older_holdout["users"])

    def forget(self, users: set[str]) -> None:
        """Drop erased users from the older holdout (file included) and re-anchor it on the current version."""
        older = self.older_holdout
        keep = [j for j, u in enumerate(older.get("users", [])) if u not in users]
        if len(keep) == len(older.get("users", [])):
            return
        for name in ("users", "items", "types", "targets"):
            older[name] = [older[name][j] for j in keep]
        self.older_users -= users
        version, contender = self.current()
        self._older_ranks = None
        if version is not None and contender is not None:
            ranks = holdout_ranks(contender, self.older_eval_set())
            older["anchor"] = Anchor.from_ranks(version, ranks).to_dict()
            self.anchor = Anchor.from_dict(older["anchor"])
            self._older_ranks = (version, ranks)
        self.checkpoints.save_holdout(older)

    def older_eval_set(self) -> EvalSet:
        """The fixed older holdout (forgetting), in catalogue indices."""
        older = self.older_holdout
        return EvalSet(
            older["users"],
            [np.asarray(x, dtype=np.int64) for x in older["items"]],
            [np.asarray(t, dtype=np.int64) for t in older["types"]],
            np.asarray(older["targets"], dtype=np.int64),
        )

    def recent_holdout(
        self, events: Sequence[EventRecord], idx: Sequence[int], histories: dict[int, History]
    ) -> EvalSet:
        """Each user's first new-to-them positive event of a micro-batch, with the history it was chosen
        after (``histories[j]`` for event ``j``); users of the older holdout are left out."""
        users, items, types, targets = [], [], [], []
        taken: set[str] = set()
        for j, (items_before, types_before) in sorted(histories.items()):
            user, item = events[j].user_id, int(idx[j])
            if user in self.older_users or user in taken or not len(items_before) or item in items_before:
                continue
            taken.add(user)
            users.append(user)
            items.append(items_before)
            types.append(types_before)
            targets.append(item)
            if len(users) >= RECENT_USERS:
                break
        return EvalSet(users, items, types, np.asarray(targets, dtype=np.int64))

    def current(self) -> tuple[str | None, Contender | None]:
        """The registry's current version and its contender (loaded once per version)."""
        current = self.registry.current()
        if current is None:
            return None, None
        if self._current is None or self._current[0] != current:
            loaded = self.registry.load(current)
            self._current = (current, (loaded.model, RowMap.from_item_ids(self.catalog, loaded.item_ids).rows))
        return current, self._current[1]

    def renamed(self, version: str, to: str) -> None:
        """``to`` was published with ``version``'s weights (a new ranker): its scores are known already."""
        if self._current is not None and self._current[0] == version:
            self._current = (to, self._current[1])
        if self._older_ranks is not None and self._older_ranks[0] == version:
            self._older_ranks = (to, self._older_ranks[1])

    # ---- the gate --------------------------------------------------------------------------------

    def judge(
        self,
        learner: Learner,
        state: TrainerState,
        untrained: set[str],
        evaluated_on: list[list[int]],
        recent: EvalSet | None = None,
    ) -> tuple[GateDecision | None, str | None]:
        """Judge the learner's weights and publish them if the gate accepts; returns (decision, version).

        ``recent``: the newest events' holdout (``None`` in a lull: there are no unseen events, so only
        forgetting is judged). No decision when nothing was trained since the last publish or publishing is
        pinned. Restarts the weights (``decision.context["resynced"]``) after repeated drift.
        """
        if not state.unpublished_ranges() or self.registry.pinned():
            return None, None  # nothing new to judge, or publishing is frozen: skip the costly comparison
        current_version, current = self.current()
        holdouts = {"older": self.older_eval_set()}
        if recent is not None:
            holdouts["recent"] = recent
        known = self._older_ranks
        decision = compare(
            learner.contender(),
            current,
            holdouts,
            self.tolerance,
            current_version,
            NOISE_Z,
            anchors={"older": self.anchor},
            current_ranks={"older": known[1]} if known is not None and known[0] == current_version else None,
        )
        if current_version is not None and "older" in decision.ranks["current"]:
            self._older_ranks = (current_version, decision.ranks["current"]["older"])
        decision.context = {
            "trained_offsets": state.unpublished_ranges(),
            "evaluated_on_offsets": [list(r) for r in evaluated_on],
        }
        published = self._publish(learner, state, untrained, decision, current_version) if decision.accepted else None
        if not decision.behind_lineage:
            self.rejections = 0
        elif current_version is not None:
            # Only drift counts: a rejection on one batch's newest events alone is often noise that the
            # next micro-batches train away, and restarting on it threw good training away (shop replay).
            self.rejections += 1
            if self.rejections >= RESYNC_AFTER:
                decision.context["resynced"] = self.resync(learner, state, current_version)
        self.gate_log.append(decision)
        return decision, published

    def _publish(
        self,
        learner: Learner,
        state: TrainerState,
        untrained: set[str],
        decision: GateDecision,
        parent: str | None,
    ) -> str:
        candidate = learner.frozen()
        published = self.registry.publish(
            candidate,
            list(learner.item_ids),
            self.types.names,
            {
                "kind": "online",
                "holdout": "none",
                "offsets": {"from": to_json([p + 1 for p in state.published]), "to": to_json(state.committed)},
                "trained_ranges": state.trained_ranges[-20:],
                "untrained_items": sorted(untrained),
                "metrics": {"gate": decision.figures},
                "data": {"max_offset": to_json(state.committed)},
                "gate": {"reason": decision.reason, "tolerance": decision.tolerance},
            },
            parent=parent,
            # the ranker over live candidates travels with the lineage until a full training fits a new one
            ranker=self.registry.ranker(parent) if parent is not None else None,
        )
        decision.candidate_version = published
        state.published = list(state.committed)
        state.base_version = published
        self._current = (published, (candidate, learner.row_map.rows))
        if "older" in decision.ranks["candidate"]:
            self._older_ranks = (published, decision.ranks["candidate"]["older"])
        return published

    def resync(self, learner: Learner, state: TrainerState, version: str) -> dict[str, Any]:
        """Restart the learner's weights from the served ``version``. Rows of items added since keep their
        trained values; the optimizer starts afresh. The discarded offsets stay in the user sequences and
        the replay buffer, and leave the lineage's record of offsets trained on."""
        loaded = self.registry.load(version)
        known = len(loaded.item_ids)
        if list(loaded.item_ids) != learner.item_ids[:known]:
            raise RuntimeError(f"version {version} is not in the trainer's lineage: cannot resync to it")
        model = loaded.model
        extra = learner.model.item_emb.weight.detach()[known + 1 :].float().clone()
        if len(extra):
            grow(model, None, extra)
        learner.adopt(model, learner.item_ids)
        discarded = state.unpublished_ranges()
        for first, last in discarded:
            state.trained_ranges = _without(state.trained_ranges, first, last)
        state.published = list(state.committed)
        self.rejections = 0
        log.warning(
            "%d rejections in a row behind the lineage: the trainer restarts its weights from %s", RESYNC_AFTER, version
        )
        return {"to": version, "discarded_offsets": discarded}


def _draw_older_holdout(sequences: Sequences, rng: np.random.Generator) -> dict[str, Any]:
    """Each sampled user's last entry as of the start, in catalogue indices (fixed for good).

    Only the last entry: a full training run (``freshrec train``, and the replay's model at the cut)
    holds it out, so it measures what the model generalises to; earlier entries are training targets the
    base model has memorised, and any fine-tuning erodes memorisation (with five entries per user the
    replay's Amazon model scored 0.17 there against 0.03 on new events, and every candidate "forgot")."""
    users = [u for u in sequences if len(sequences.get(u)) >= 2]
    size = min(OLDER_USERS, len(users) // 5)
    picks = rng.choice(len(users), size=size, replace=False)
    chosen = [users[i] for i in sorted(picks)]
    return {
        "users": chosen,
        "items": [sequences.get(u).item_array()[:-1].tolist() for u in chosen],
        "types": [sequences.get(u).type_array()[:-1].tolist() for u in chosen],
        "targets": [int(sequences.get(u).item_array()[-1]) for u in chosen],
    }


def _without(ranges: list[list[int]], first: int, last: int) -> list[list[int]]:
    """Merged offset ranges minus [first, last]."""
    out = []
    for lo, hi in ranges:
        if lo < first:
            out.append([lo, min(hi, first - 1)])
        if hi > last:
            out.append([max(lo, last + 1), hi])
    return out

"""From the event log to a published, evaluated model version (``freshrec train`` / ``freshrec evaluate``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from freshrec.eval.offline import batch_tokens, evaluate_scorer, model_scorer, popularity_scorer
from freshrec.model.data import EvalSet, SequenceData, Split, leave_one_out, sequences_from_log
from freshrec.model.device import amp_dtype, resolve_device
from freshrec.model.rowmap import RowMap
from freshrec.model.sasrec import SASRec, SASRecConfig
from freshrec.model.train import FitResult, Trainer
from freshrec.online.gate import GateDecision, GateLog, compare
from freshrec.serving_model import ServingModel

if TYPE_CHECKING:
    from freshrec.config import Settings
    from freshrec.engine import Engine

log = logging.getLogger(__name__)

PROTOCOL = "offline leave-one-out, full ranking"
METRIC_KS = (10, 20, 50)


@dataclass
class TrainReport:
    version: str | None  # None when a warm-started candidate was rejected by the gate
    fit: FitResult
    metrics: dict[str, Any]
    data: dict[str, Any]
    decision: GateDecision | None = None
    content_items: int = 0  # catalogue items encoded for cold start (0: no content or content disabled)


def model_config(settings: Settings, num_items: int, num_types: int) -> SASRecConfig:
    m = settings.model
    return SASRecConfig(
        num_items=num_items,
        dim=m.dim,
        heads=m.heads,
        layers=m.layers,
        dropout=m.dropout,
        attention_dropout=m.attention_dropout,
        max_len=m.max_len,
        ffn_mult=m.ffn_mult,
        num_types=num_types if m.use_event_types else 0,
        towers=m.towers,
    )


def read_sequences(engine: Engine, upto_offset: int | None = None, progress: bool = False) -> SequenceData:
    return sequences_from_log(
        engine.event_log,
        engine.catalog,
        engine.types,
        collapse_repeats=engine.settings.state.collapse_repeats,
        upto_offset=upto_offset,
        progress=progress,
    )


def evaluate_split(model: SASRec, split: Split, settings: Settings, progress: bool = False) -> dict[str, Any]:
    """Model and popularity metrics on the split's test set (its validation set when there is none)."""
    device = resolve_device(settings.train.device)
    target: EvalSet = split.test if split.test is not None else split.valid
    scorer = model_scorer(model.to(device), device, amp_dtype(device, settings.train.precision))
    batch = settings.train.eval_batch_size
    shape = {"max_tokens": batch_tokens(device), "max_len": model.config.max_len}
    popularity = popularity_scorer(split.train_items, model.num_items)
    return {
        "protocol": PROTOCOL,
        "evaluated_on": "test (last item)" if split.test is not None else "validation (last item)",
        "model": evaluate_scorer(scorer, target, METRIC_KS, batch, progress=progress, **shape),
        "popularity": evaluate_scorer(popularity, target, METRIC_KS, batch, **shape),
        "model_unfiltered": evaluate_scorer(scorer, target, METRIC_KS, batch, filter_seen=False, **shape),
    }


def warm_start_model(engine: Engine, config: SASRecConfig) -> tuple[SASRec, str]:
    """A model for catalogue indices 1..N initialised from the current version: every weight copied, item
    rows moved to their catalogue index (items the version never knew keep a fresh initialisation)."""
    current = engine.registry.current()
    if current is None:
        raise ValueError("--warm-start needs a current model version; train one first")
    loaded = engine.registry.load(current)
    old = loaded.model.config.to_dict()
    if {k: v for k, v in old.items() if k != "num_items"} != {
        k: v for k, v in config.to_dict().items() if k != "num_items"
    }:
        raise ValueError(f"--warm-start needs the current version's architecture ({current}: {old})")
    model = SASRec(config)
    state = model.state_dict()
    for key, value in loaded.model.state_dict().items():
        if key != "item_emb.weight":
            state[key] = value
    rows = RowMap.from_item_ids(engine.catalog, loaded.item_ids).rows(np.arange(config.num_items + 1))
    known = rows > 0
    table = state["item_emb.weight"].clone()
    table[torch.from_numpy(np.flatnonzero(known))] = loaded.model.item_emb.weight.detach()[
        torch.from_numpy(rows[known])
    ]
    state["item_emb.weight"] = table
    model.load_state_dict(state)
    return model, current


def train_and_publish(
    engine: Engine, holdout: str = "test", progress: bool = True, warm_start: bool = False
) -> TrainReport:
    """Train on everything in the event log and publish the result as the current version.

    ``holdout="test"`` keeps each user's last event out of training, so the published version's test
    metrics are honest; ``holdout="valid"`` trains on all but the last event (validation only).
    ``warm_start`` starts from the current version's weights and publishes only through the quality gate
    (not worse than the current version on each user's newest held-out event); a rejected candidate
    is not published and ``TrainReport.version`` is ``None``.
    """
    settings = engine.settings
    data = read_sequences(engine, progress=progress)
    if not data.users:
        raise ValueError("the event log is empty: import or post events before training")
    split = leave_one_out(data, holdout)
    if not len(split.valid):
        raise ValueError(f"no user has enough events for a {holdout!r} holdout (need at least 3)")
    config = model_config(settings, data.num_items, len(engine.types))
    parent = None
    if warm_start:
        model, parent = warm_start_model(engine, config)
    else:
        torch.manual_seed(settings.train.seed)  # the initial weights are part of a reproducible run
        model = SASRec(config)
    trainer = Trainer(model, settings.train, progress=progress)
    fit = trainer.fit(split.train_items, split.train_types, split.valid)
    metrics = evaluate_split(trainer.model, split, settings)
    metrics["valid"] = fit.valid
    decision = None
    if warm_start:
        decision = _gate_against_current(engine, trainer.model, split, parent)
        metrics["gate"] = decision.figures
    training = {k: v for k, v in fit.to_dict().items() if k != "history"}
    training["history"] = [
        {
            "epoch": h.epoch,
            "loss": round(h.loss, 5),
            "seconds": round(h.seconds, 3),
            "ndcg@10": h.valid.get("ndcg@10"),
        }
        for h in fit.history
    ]
    training["train_settings"] = settings.train.model_dump()
    meta = {
        "metrics": metrics,
        "data": data.data_range(),
        "training": training,
        "holdout": holdout,
        "kind": "warm-start" if warm_start else "full",
        "offsets": {"from": 1, "to": data.max_offset},
        # Rows of these items only ever served as softmax negatives: serving treats them as cold
        # (scored from content when they have it) and the content mapping is not fitted on them.
        "untrained_items": untrained_items(engine, split, data.num_items),
    }
    if decision is not None:
        meta["gate"] = {"reason": decision.reason, "tolerance": decision.tolerance}
        if not decision.accepted:
            return TrainReport(None, fit, metrics, data.data_range(), decision)
    version = engine.registry.publish(
        trainer.model,
        item_ids=engine.catalog.external_ids()[: data.num_items],
        event_types=engine.types.names,
        meta=meta,
        parent=parent,
        make_current=engine.registry.pinned() is None,
    )
    if decision is not None:
        decision.candidate_version = version
        GateLog(engine.registry.root).append(decision)
    return TrainReport(version, fit, metrics, data.data_range(), decision, _fit_content(engine, progress))


def untrained_items(engine: Engine, split: Split, num_items: int) -> list[str]:
    """External ids of catalogue items that never occur in the training sequences."""
    seen = np.zeros(num_items + 1, dtype=bool)
    for items in split.train_items:
        seen[items] = True
    ids = engine.catalog.external_ids()
    return [ids[i - 1] for i in np.flatnonzero(~seen[1:]) + 1]


def _fit_content(engine: Engine, progress: bool) -> int:
    """Refit the content encoder with the model, so new items map into the new version's space."""
    if engine.content is None:
        return 0
    try:
        return engine.fit_content(progress=progress)
    except ValueError:  # no item has content: cold items fall back to co-occurrence and exploration
        return 0


def _gate_against_current(engine: Engine, model: SASRec, split: Split, current: str | None) -> GateDecision:
    """The online trainer's gate, for a warm-started full retrain: judged on each user's newest event."""
    loaded = engine.registry.load(current)
    current_contender = (loaded.model, RowMap.from_item_ids(engine.catalog, loaded.item_ids).rows)
    identity = RowMap(np.arange(1, model.num_items + 1)).rows
    online = engine.settings.online
    decision = compare(
        (model, identity),
        current_contender,
        {"newest": split.valid},
        online.gate_tolerance,
        current,
        online.gate_noise_z,
    )
    decision.context = {"kind": "warm-start"}
    if not decision.accepted:
        GateLog(engine.registry.root).append(decision)
    return decision


def evaluate_version(engine: Engine, version: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Re-run the offline protocol for a published version on the events it was trained from."""
    loaded = engine.registry.load(version)
    meta = loaded.meta
    if meta.get("holdout") not in ("test", "valid"):
        raise ValueError(
            f"version {loaded.version} was trained online on every event up to offset "
            f"{meta.get('data', {}).get('max_offset')}, so no held-out event is left for the offline protocol; "
            "measure it with `freshrec replay`, or evaluate a version from `freshrec train`"
        )
    data = read_sequences(engine, upto_offset=meta.get("data", {}).get("max_offset"), progress=progress)
    split = leave_one_out(data, meta.get("holdout", "test"))
    # Evaluate in the model's own row space, so a version trained on another data directory works too.
    serving = ServingModel(loaded, engine.catalog, engine.types)
    mapped = Split(
        [serving.rows(s) for s in split.train_items],
        split.train_types,
        split.valid.remap(serving.rows, serving.type_map),
        split.test.remap(serving.rows, serving.type_map) if split.test is not None else None,
        split.holdout,
    )
    result = evaluate_split(loaded.model, mapped, engine.settings, progress=progress)
    result["version"] = loaded.version
    return result

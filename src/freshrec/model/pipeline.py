"""From the event log to a published, evaluated model version (``freshrec train`` / ``freshrec evaluate``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from freshrec.eval.offline import evaluate_scorer, model_scorer, popularity_scorer
from freshrec.model.data import EvalSet, SequenceData, Split, leave_one_out, sequences_from_log
from freshrec.model.device import amp_dtype, resolve_device
from freshrec.model.sasrec import SASRec, SASRecConfig
from freshrec.model.train import FitResult, Trainer
from freshrec.serving_model import ServingModel

if TYPE_CHECKING:
    from freshrec.config import Settings
    from freshrec.engine import Engine

log = logging.getLogger(__name__)

PROTOCOL = "offline leave-one-out, full ranking"
METRIC_KS = (10, 20, 50)


@dataclass
class TrainReport:
    version: str
    fit: FitResult
    metrics: dict[str, Any]
    data: dict[str, Any]


def model_config(settings: Settings, num_items: int, num_types: int) -> SASRecConfig:
    m = settings.model
    return SASRecConfig(
        num_items=num_items,
        dim=m.dim,
        heads=m.heads,
        layers=m.layers,
        dropout=m.dropout,
        max_len=m.max_len,
        ffn_mult=m.ffn_mult,
        num_types=num_types if m.use_event_types else 0,
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
    return {
        "protocol": PROTOCOL,
        "evaluated_on": "test (last item)" if split.test is not None else "validation (last item)",
        "model": evaluate_scorer(scorer, target, METRIC_KS, batch, progress=progress),
        "popularity": evaluate_scorer(popularity_scorer(split.train_items, model.num_items), target, METRIC_KS, batch),
        "model_unfiltered": evaluate_scorer(scorer, target, METRIC_KS, batch, filter_seen=False),
    }


def train_and_publish(engine: Engine, holdout: str = "test", progress: bool = True) -> TrainReport:
    """Train a fresh model on everything in the event log and publish it as the current version.

    ``holdout="test"`` keeps each user's last event out of training, so the published version's test
    metrics are honest; ``holdout="valid"`` trains on all but the last event (validation only).
    """
    settings = engine.settings
    data = read_sequences(engine, progress=progress)
    if not data.users:
        raise ValueError("the event log is empty: import or post events before training")
    split = leave_one_out(data, holdout)
    if not len(split.valid):
        raise ValueError(f"no user has enough events for a {holdout!r} holdout (need at least 3)")
    model = SASRec(model_config(settings, data.num_items, len(engine.types)))
    trainer = Trainer(model, settings.train, progress=progress)
    fit = trainer.fit(split.train_items, split.train_types, split.valid)
    metrics = evaluate_split(trainer.model, split, settings)
    metrics["valid"] = fit.valid
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
    version = engine.registry.publish(
        trainer.model,
        item_ids=engine.catalog.external_ids()[: data.num_items],
        event_types=engine.types.names,
        meta={"metrics": metrics, "data": data.data_range(), "training": training, "holdout": holdout},
    )
    return TrainReport(version, fit, metrics, data.data_range())


def evaluate_version(engine: Engine, version: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Re-run the offline protocol for a published version on the events it was trained from."""
    loaded = engine.registry.load(version)
    meta = loaded.meta
    data = read_sequences(engine, upto_offset=meta.get("data", {}).get("max_offset"), progress=progress)
    split = leave_one_out(data, meta.get("holdout", "test"))
    # Evaluate in the model's own row space, so a version trained on another data directory works too.
    serving = ServingModel(loaded, engine.catalog, engine.types)

    def to_rows(seqs: list[np.ndarray]) -> list[np.ndarray]:
        return [serving.rows(s) for s in seqs]

    def remap(es: EvalSet) -> EvalSet:
        rows = [serving.rows(s) for s in es.items]
        keep = [r > 0 for r in rows]
        return EvalSet(
            es.users,
            [r[k] for r, k in zip(rows, keep, strict=True)],
            [serving.type_map[t][k] for t, k in zip(es.types, keep, strict=True)],
            serving.rows(es.targets),
        )

    mapped = Split(
        to_rows(split.train_items),
        split.train_types,
        remap(split.valid),
        remap(split.test) if split.test is not None else None,
        split.holdout,
    )
    result = evaluate_split(loaded.model, mapped, engine.settings, progress=progress)
    result["version"] = loaded.version
    return result

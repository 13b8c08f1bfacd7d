"""Train -> evaluate -> publish: from the event log to a published model version.

The application service behind ``freshrec train`` and ``freshrec evaluate`` (and the streaming replay's
periodic retrain). It reads the durable stores only (:class:`~freshrec.stores.Stores`): no live state is
rebuilt to train.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from freshrec.config import Settings
from freshrec.device import amp_dtype, resolve_device
from freshrec.model.data import SequenceData, Split, leave_one_out, sequences_from_log
from freshrec.model.evaluate import evaluate_split
from freshrec.model.gate import NOISE_Z, GateDecision, GateLog, compare
from freshrec.model.rowmap import RowMap
from freshrec.model.sasrec import SASRec, SASRecConfig
from freshrec.model.train import FitResult, Trainer
from freshrec.stores import Stores

log = logging.getLogger(__name__)


@dataclass
class TrainReport:
    version: str | None  # None when a warm-started candidate was rejected by the gate
    fit: FitResult
    metrics: dict[str, Any]
    data: dict[str, Any]
    decision: GateDecision | None = None
    content_items: int = 0  # catalogue items encoded for cold start (0: no content or content disabled)


def model_config(settings: Settings, num_items: int, num_types: int) -> SASRecConfig:
    """The architecture the settings ask for, over ``num_items`` items and ``num_types`` event types."""
    m = settings.model
    return SASRecConfig(
        num_items=num_items,
        dim=m.dim,
        heads=m.heads,
        layers=m.layers,
        dropout=m.dropout,
        max_len=m.max_len,
        num_types=num_types,
    )


def read_sequences(stores: Stores, upto_offset: int | None = None, progress: bool = False) -> SequenceData:
    """Every user's full sequence as the log holds it (up to ``upto_offset``)."""
    return sequences_from_log(
        stores.event_log,
        stores.catalog,
        stores.types,
        collapse_repeats=stores.settings.state.collapse_repeats,
        upto_offset=upto_offset,
        progress=progress,
    )


def _evaluate(model: SASRec, split: Split, settings: Settings, progress: bool = False) -> dict[str, Any]:
    device = resolve_device(settings.train.device)
    return evaluate_split(model, split, device, amp_dtype(device, settings.train.precision), progress=progress)


def warm_start_model(stores: Stores, config: SASRecConfig) -> tuple[SASRec, str]:
    """A model for catalogue indices 1..N initialised from the current version: every weight copied, item
    rows moved to their catalogue index (items the version never knew keep a fresh initialisation)."""
    current = stores.registry.current()
    if current is None:
        raise ValueError("--warm-start needs a current model version; train one first")
    loaded = stores.registry.load(current)
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
    rows = RowMap.from_item_ids(stores.catalog, loaded.item_ids).rows(np.arange(config.num_items + 1))
    known = rows > 0
    table = state["item_emb.weight"].clone()
    table[torch.from_numpy(np.flatnonzero(known))] = loaded.model.item_emb.weight.detach()[
        torch.from_numpy(rows[known])
    ]
    state["item_emb.weight"] = table
    model.load_state_dict(state)
    return model, current


def train_and_publish(
    stores: Stores, holdout: str = "test", progress: bool = True, warm_start: bool = False
) -> TrainReport:
    """Train on everything in the event log and publish the result as the current version.

    ``holdout="test"`` keeps each user's last event out of training, so the published version's test
    metrics are honest; ``holdout="valid"`` trains on all but the last event (validation only).
    ``warm_start`` starts from the current version's weights and publishes only through the quality gate
    (not worse than the current version on each user's newest held-out event); a rejected candidate
    is not published and ``TrainReport.version`` is ``None``. The content encoder is refitted with the
    model, so new items map into the new version's space.

    Example
    -------
    >>> import tempfile
    >>> from freshrec.config import load_settings
    >>> from freshrec.schema import EventRecord
    >>> from freshrec.stores import open_stores
    >>> stores = open_stores(load_settings(storage={"data_dir": tempfile.mkdtemp()},
    ...     model={"dim": 8, "heads": 1, "layers": 1, "max_len": 8}, train={"epochs": 2, "device": "cpu"}))
    >>> _ = stores.event_log.append([EventRecord(0, f"u{u}", f"i{(u + n) % 5}", "view", float(n))
    ...                              for u in range(4) for n in range(4)])
    >>> report = train_and_publish(stores, progress=False)
    >>> report.version, report.metrics["protocol"]
    ('v00001', 'offline leave-one-out, full ranking')
    >>> stores.close()
    """
    settings = stores.settings
    data = read_sequences(stores, progress=progress)
    if not data.users:
        raise ValueError("the event log is empty: import or post events before training")
    split = leave_one_out(data, holdout)
    if not len(split.valid):
        raise ValueError(f"no user has enough events for a {holdout!r} holdout (need at least 3)")
    config = model_config(settings, data.num_items, len(stores.types))
    parent = None
    if warm_start:
        model, parent = warm_start_model(stores, config)
    else:
        torch.manual_seed(settings.train.seed)  # the initial weights are part of a reproducible run
        model = SASRec(config)
    trainer = Trainer(model, settings.train, progress=progress)
    fit = trainer.fit(split.train_items, split.train_types, split.valid)
    metrics = _evaluate(trainer.model, split, settings)
    metrics["valid"] = fit.valid
    decision = None
    if warm_start:
        decision = _gate_against_current(stores, trainer.model, split, parent)
        metrics["gate"] = decision.figures
    meta = {
        "metrics": metrics,
        "data": data.data_range(),
        "training": _training_record(fit, settings),
        "holdout": holdout,
        "kind": "warm-start" if warm_start else "full",
        "offsets": {"from": 1, "to": data.max_offset},
        # Rows of these items only ever served as softmax negatives: serving treats them as cold
        # (scored from content when they have it) and the content mapping is not fitted on them.
        "untrained_items": untrained_items(stores, split, data.num_items),
    }
    if decision is not None:
        meta["gate"] = {"reason": decision.reason, "tolerance": decision.tolerance}
        if not decision.accepted:
            return TrainReport(None, fit, metrics, data.data_range(), decision)
    version = stores.registry.publish(
        trainer.model,
        item_ids=stores.catalog.external_ids()[: data.num_items],
        event_types=stores.types.names,
        meta=meta,
        parent=parent,
        make_current=stores.registry.pinned() is None,
    )
    if decision is not None:
        decision.candidate_version = version
        GateLog(stores.registry.root).append(decision)
    return TrainReport(version, fit, metrics, data.data_range(), decision, _fit_content(stores, progress))


def _training_record(fit: FitResult, settings: Settings) -> dict[str, Any]:
    """What a version's metadata says about how it was trained."""
    training = {k: v for k, v in fit.to_dict().items() if k != "history"}
    training["history"] = [
        {"epoch": h.epoch, "loss": round(h.loss, 5), "seconds": round(h.seconds, 3), "ndcg@10": h.valid.get("ndcg@10")}
        for h in fit.history
    ]
    training["train_settings"] = settings.train.model_dump()
    return training


def untrained_items(stores: Stores, split: Split, num_items: int) -> list[str]:
    """External ids of catalogue items that never occur in the training sequences."""
    seen = np.zeros(num_items + 1, dtype=bool)
    for items in split.train_items:
        seen[items] = True
    ids = stores.catalog.external_ids()
    return [ids[i - 1] for i in np.flatnonzero(~seen[1:]) + 1]


def _fit_content(stores: Stores, progress: bool) -> int:
    """Refit the content encoder with the model, so new items map into the new version's space."""
    if stores.content is None:
        return 0
    try:
        return stores.content.fit(stores.settings.content.encoder, progress=progress)
    except ValueError:  # no item has content: cold items fall back to co-occurrence and exploration
        return 0


def _gate_against_current(stores: Stores, model: SASRec, split: Split, current: str | None) -> GateDecision:
    """The online trainer's gate, for a warm-started full retrain: judged on each user's newest event."""
    loaded = stores.registry.load(current)
    current_contender = (loaded.model, RowMap.from_item_ids(stores.catalog, loaded.item_ids).rows)
    identity = RowMap(np.arange(1, model.num_items + 1)).rows
    decision = compare(
        (model, identity),
        current_contender,
        {"newest": split.valid},
        stores.settings.online.gate_tolerance,
        current,
        NOISE_Z,
    )
    decision.context = {"kind": "warm-start"}
    if not decision.accepted:
        GateLog(stores.registry.root).append(decision)
    return decision


def evaluate_version(stores: Stores, version: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Re-run the offline protocol for a published version on the events it was trained from."""
    loaded = stores.registry.load(version)
    meta = loaded.meta
    if meta.get("holdout") not in ("test", "valid"):
        raise ValueError(
            f"version {loaded.version} was trained online on every event up to offset "
            f"{meta.get('data', {}).get('max_offset')}, so no held-out event is left for the offline protocol; "
            "measure it with `freshrec replay`, or evaluate a version from `freshrec train`"
        )
    data = read_sequences(stores, upto_offset=meta.get("data", {}).get("max_offset"), progress=progress)
    split = leave_one_out(data, meta.get("holdout", "test"))
    # Evaluate in the model's own row space, so a version trained on another data directory works too.
    rows = RowMap.from_item_ids(stores.catalog, loaded.item_ids).rows
    type_map = stores.types.translation(loaded.event_types)
    mapped = Split(
        [rows(s) for s in split.train_items],
        split.train_types,
        split.valid.remap(rows, type_map),
        split.test.remap(rows, type_map) if split.test is not None else None,
        split.holdout,
    )
    result = _evaluate(loaded.model, mapped, stores.settings, progress=progress)
    result["version"] = loaded.version
    return result

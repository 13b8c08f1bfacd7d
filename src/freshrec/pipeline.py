"""Train -> evaluate -> publish: from the event log to a published model version.

The application service behind ``freshrec train`` and ``freshrec evaluate`` (and the streaming replay's
periodic retrain). It reads the durable stores only (:class:`~freshrec.stores.Stores`): no live state is
rebuilt to train.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from freshrec.config import Settings
from freshrec.device import amp_dtype, resolve_device
from freshrec.metrics import DEFAULT_KS, summarize
from freshrec.model.data import SequenceData, Split, leave_one_out, sequences_from_log
from freshrec.model.evaluate import evaluate_split
from freshrec.model.gate import NOISE_Z, GateDecision, GateLog, compare
from freshrec.model.registry import LoadedModel
from freshrec.model.rowmap import RowMap
from freshrec.model.sasrec import SASRec, SASRecConfig
from freshrec.model.train import FitResult, Trainer
from freshrec.position import as_cursor, base, describe, to_json
from freshrec.ranking.collect import Requests, collect
from freshrec.ranking.ranker import Ranker
from freshrec.sequence import EventTypes
from freshrec.serving_model import ServingModel
from freshrec.stores import Stores

log = logging.getLogger(__name__)

#: Fewest requests (held-out events whose item was among the candidates) a ranker is fitted on; with fewer,
#: the version has none and serves the transformer's own ranking.
MIN_RANKER_REQUESTS = 50


@dataclass
class TrainReport:
    version: str | None  # None when a warm-started candidate was rejected by the gate
    fit: FitResult
    metrics: dict[str, Any]
    data: dict[str, Any]
    decision: GateDecision | None = None
    content_items: int = 0  # catalogue items encoded for cold start (0: no content or content disabled)


def model_config(
    settings: Settings, num_items: int, num_types: int, conversion_types: Sequence[int] = ()
) -> SASRecConfig:
    """The architecture the settings ask for, over ``num_items`` items and ``num_types`` event types, with a
    conversion head for these type codes when there are any (:func:`conversion_codes`)."""
    m = settings.model
    return SASRecConfig(
        num_items=num_items,
        dim=m.dim,
        heads=m.heads,
        layers=m.layers,
        dropout=m.dropout,
        max_len=m.max_len,
        num_types=num_types,
        conversion_types=tuple(conversion_types),
    )


def conversion_codes(settings: Settings, types: EventTypes, train_types: Sequence[np.ndarray]) -> tuple[int, ...]:
    """The codes of ``events.conversion_types`` when the training sequences (their type codes) have a
    conversion to learn from, else none: a head with nothing to learn would only be the engagement head.

    >>> from freshrec.config import load_settings
    >>> settings, types = load_settings(), EventTypes(["view", "purchase"])
    >>> conversion_codes(settings, types, [np.array([1, 2, 1])]), conversion_codes(settings, types, [np.array([2, 1])])
    ((2,), ())
    """
    codes = tuple(types.code[t] for t in settings.events.conversion_types if t in types)
    # the first entry of a sequence is never a target
    return codes if codes and any(np.isin(t[1:], codes).any() for t in train_types) else ()


def read_sequences(stores: Stores, upto: Sequence[int] | int | None = None, progress: bool = False) -> SequenceData:
    """Every user's full sequence as the log holds it (up to cursor ``upto``)."""
    return sequences_from_log(
        stores.event_log,
        stores.catalog,
        stores.types,
        collapse_repeats=stores.settings.state.collapse_repeats,
        upto=upto,
        progress=progress,
    )


def _evaluate(
    model: SASRec, split: Split, settings: Settings, type_names: Sequence[str], progress: bool = False
) -> dict[str, Any]:
    """The offline protocol, with per-objective figures on the conversion types the settings name
    (``type_names``: the model's event types, whose position + 1 is their code)."""
    device = resolve_device(settings.train.device)
    codes = [i + 1 for i, name in enumerate(type_names) if name in settings.events.conversion_types]
    amp = amp_dtype(device, settings.train.precision)
    return evaluate_split(model, split, device, amp, progress=progress, conversion_types=codes)


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
    config = model_config(
        settings, data.num_items, len(stores.types), conversion_codes(settings, stores.types, split.train_types)
    )
    parent = None
    if warm_start:
        model, parent = warm_start_model(stores, config)
    else:
        torch.manual_seed(settings.train.seed)  # the initial weights are part of a reproducible run
        model = SASRec(config)
    trainer = Trainer(model, settings.train, progress=progress)
    fit = trainer.fit(split.train_items, split.train_types, split.valid)
    metrics = _evaluate(trainer.model, split, settings, stores.types.names)
    metrics["valid"] = fit.valid
    untrained = untrained_items(stores, split, data.num_items)
    content_items = _fit_content(stores, progress)
    serving = bind(stores, trainer.model, data.num_items, untrained)
    ranker, ranker_meta = fit_ranker(stores, serving, data, holdout, progress)
    if ranker is not None and holdout == "test":
        metrics["served"] = served_metrics(stores, serving, ranker, data, progress)
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
        "offsets": {"from": to_json([base(p) + 1 for p in range(len(data.position))]), "to": to_json(data.position)},
        # Rows of these items only ever served as softmax negatives: serving treats them as cold
        # (scored from content when they have it) and the content mapping is not fitted on them.
        "untrained_items": untrained,
        "ranker": ranker_meta,
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
        ranker=ranker.to_text() if ranker is not None else None,
    )
    if decision is not None:
        decision.candidate_version = version
        GateLog(stores.registry.root).append(decision)
    return TrainReport(version, fit, metrics, data.data_range(), decision, content_items)


def bind(stores: Stores, model: SASRec, num_items: int, untrained: list[str]) -> ServingModel:
    """A freshly trained model (rows = catalogue indices 1..N) bound for serving, as a published version would
    be: its index, and content-mapped rows for the items it has no trained row for."""
    loaded = LoadedModel(
        "candidate",
        model.eval(),
        stores.catalog.external_ids()[:num_items],
        stores.types.names,
        {"untrained_items": untrained},
    )
    serving = ServingModel(loaded, stores.catalog, stores.types, stores.settings.serving.index)
    if stores.content is not None:
        serving.attach_content(stores.content)
    return serving


def _entry_targets(data: SequenceData, back: int) -> dict[str, int]:
    """Per user with at least ``back + 1`` entries, the position of the entry ``back`` from the end."""
    return {u: len(s) - back for u, s in zip(data.users, data.items, strict=True) if len(s) > back}


def fit_ranker(
    stores: Stores, serving: ServingModel, data: SequenceData, holdout: str, progress: bool = False
) -> tuple[Ranker | None, dict[str, Any]]:
    """The ranker over live candidates, fitted on each user's validation event (held out of the model's
    training, so its scores there are not memorised), with what the fit did; ``None`` with fewer than
    :data:`MIN_RANKER_REQUESTS` requests."""
    back = 2 if holdout == "test" else 1
    requests = collect(stores, serving, _entry_targets(data, back), data.position, progress)
    meta: dict[str, Any] = {"requests_asked": len(requests.targets), "candidate_recall": requests.recall}
    if len(requests.groups) < MIN_RANKER_REQUESTS:
        meta["skipped"] = f"{len(requests.groups)} requests, fewer than {MIN_RANKER_REQUESTS}"
        return None, meta
    ranker, report = Ranker.fit(requests.x, requests.y, requests.groups, seed=stores.settings.train.seed)
    meta.update(asdict(report))
    return ranker, meta


def served_ranks(ranker: Ranker, requests: Requests) -> np.ndarray:
    """The rank of each asked request's chosen item in the ranker's order (a miss when it was not a candidate)."""
    ranks, start, kept = [], 0, iter(range(len(requests.groups)))
    for target in requests.targets:
        if target < 0:
            ranks.append(np.iinfo(np.int32).max)
            continue
        g = requests.groups[next(kept)]
        scores = ranker.score(requests.x[start : start + g])
        start += g
        ranks.append(int((scores > scores[target]).sum()))
    return np.asarray(ranks, dtype=np.int64)


def served_metrics(
    stores: Stores, serving: ServingModel, ranker: Ranker, data: SequenceData, progress: bool = False
) -> dict[str, float]:
    """The offline protocol on the served pipeline: each user's last event ranked by the ranker among the live
    sources' candidates (seen items excluded); an item that was not a candidate is a miss."""
    requests = collect(stores, serving, _entry_targets(data, 1), data.position, progress)
    return {**summarize(served_ranks(ranker, requests), DEFAULT_KS), "candidate_recall": requests.recall}


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
            f"version {loaded.version} was trained online on every event up to "
            f"{describe(as_cursor(meta.get('data', {}).get('max_offset')))}, so no held-out event is left for the "
            "offline protocol; "
            "measure it with `freshrec replay`, or evaluate a version from `freshrec train`"
        )
    data = read_sequences(stores, upto=meta.get("data", {}).get("max_offset"), progress=progress)
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
    result = _evaluate(loaded.model, mapped, stores.settings, loaded.event_types, progress=progress)
    if loaded.ranker is not None and split.test is not None:
        serving = ServingModel(loaded, stores.catalog, stores.types, stores.settings.serving.index)
        if stores.content is not None:
            serving.attach_content(stores.content)
        result["served"] = served_metrics(stores, serving, Ranker.from_text(loaded.ranker), data, progress)
    result["version"] = loaded.version
    return result

"""Inner half of the RecBole SASRec peer benchmark: runs *inside* the RecBole virtualenv.

Started by ``recbole_sasrec.py`` (the stdlib-only driver) as::

    <venv>/bin/python _recbole_inner.py SPEC.json RESULT.json

``SPEC.json`` holds ``{"model": ..., "dataset": ..., "config": {...}}``; the working directory must be
the benchmark work dir, because RecBole writes ``./log`` and ``./log_tensorboard`` relative to it. The
driver sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` so that RecBole's ``torch.load`` of its own
checkpoint (a pickled dict holding the ``Config`` object) still works on torch >= 2.6, whose default
became ``weights_only=True``.

The steps mirror ``recbole.quick_start.run_recbole`` one for one (seeding, logger, dataset, split,
re-seeding, model, FLOPs count, trainer, fit, evaluate), so that with the same config the numbers are
the ones ``run_recbole`` would report; ``get_flops`` is kept because it runs one forward pass of the
freshly built (training-mode) model, which draws from the RNG. ``recbole.quick_start`` itself is not
imported: it imports ``ray`` at module level, which this benchmark does not need. The only additions
are wall-clock timers around dataset preparation, ``fit`` and the test ``evaluate``, instance-level
wrappers that time every training epoch and validation pass and note which epoch was checkpointed, an
optional wall-clock budget (``spec["max_seconds"]``: training stops after the epoch that crosses it and the
best checkpoint so far is tested, as early stopping would), and a second test pass on the same best model
with freshrec's default protocol (every item of the user's training + validation history removed from the
ranking, :func:`filtered_test`), so both protocols are reported for the same weights.

Resuming (``spec["resume"]``): a converged run on a larger file can outlast the process that started it.
After every validated epoch the runner saves the trainer's whole state (weights, optimizer, early-stopping
counter, best score; RecBole's own ``_save_checkpoint`` format) to ``resume.pth`` and the epoch record
(times, validation history, which file holds the best weights) to ``progress.json`` in the working
directory. A resumed run loads both with RecBole's ``Trainer.resume_checkpoint`` and continues at the next
epoch, so early stopping sees the same sequence of validation scores an uninterrupted run would (the data
order of later epochs differs: the RNG state is not part of RecBole's checkpoint).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from logging import getLogger
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import recbole
import scipy
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.transform import construct_transform
from recbole.utils import get_flops, get_model, get_trainer, init_logger, init_seed

T = TypeVar("T")


def _timed(fn: Callable[..., T], sink: list[float]) -> Callable[..., T]:
    """Wrap ``fn`` so that each call appends its wall-clock seconds to ``sink``."""

    def wrapper(*args: Any, **kwargs: Any) -> T:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            sink.append(time.perf_counter() - start)

    return wrapper


def _plain(value: Any) -> Any:
    """Make RecBole/numpy/torch values JSON-serialisable (metrics come back as numpy floats)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.device):
        return str(value)
    return value


class _Budget(Exception):
    """Raised from the epoch wrapper once the wall-clock budget is spent."""


def _histories(config: Config, dataset: Any) -> dict[int, np.ndarray]:
    """Internal user id -> internal ids of every item the user interacted with except the last (the test
    item), read from the atomic file the driver wrote (sorted by user, then timestamp)."""
    name = config["dataset"]
    frame = pd.read_csv(Path(config["data_path"]) / f"{name}.inter", sep="\t", dtype=str, usecols=[0, 1])
    frame.columns = ["user", "item"]
    users = dataset.token2id("user_id", frame["user"].to_numpy())
    items = dataset.token2id("item_id", frame["item"].to_numpy())
    out: dict[int, np.ndarray] = {}
    order = np.argsort(users, kind="stable")
    users, items = users[order], items[order]
    bounds = np.flatnonzero(np.diff(users)) + 1
    for u, seq in zip(np.split(users, bounds), np.split(items, bounds), strict=True):
        out[int(u[0])] = seq[:-1]
    return out


def filtered_test(config: Config, dataset: Any, model: Any, test_data: Any) -> dict[str, float]:
    """HR/NDCG/MRR@10 and @20 of ``model`` on RecBole's test examples with the user's history (all
    interactions but the test one) removed from the ranking: freshrec's default protocol. Rank = number
    of items scoring strictly higher than the held-out item (0-based), as in freshrec.metrics."""
    history = _histories(config, dataset)
    uid_field, iid_field = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
    ranks: list[np.ndarray] = []
    model.eval()
    with torch.no_grad():
        for interaction, _history_index, _positive_u, _positive_i in test_data:
            interaction = interaction.to(config["device"])
            scores = model.full_sort_predict(interaction).view(len(interaction), -1).float()
            scores[:, 0] = -torch.inf
            users = interaction[uid_field].cpu().numpy()
            targets = interaction[iid_field]
            for row, u in enumerate(users):
                seen = torch.as_tensor(history[int(u)], device=scores.device)
                seen = seen[seen != targets[row]]
                scores[row, seen] = -torch.inf
            target_scores = scores.gather(1, targets.view(-1, 1))
            ranks.append((scores > target_scores).sum(dim=1).cpu().numpy())
    rank = np.concatenate(ranks)
    out: dict[str, float] = {"n": len(rank)}
    for k in (10, 20):
        hit = rank < k
        out[f"hit@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0).mean())
        out[f"mrr@{k}"] = float(np.where(hit, 1.0 / (rank + 1.0), 0.0).mean())
    return out


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Train and test one RecBole model as ``spec`` describes; return timings, metrics and versions."""
    config = Config(model=spec["model"], dataset=spec["dataset"], config_dict=spec["config"])
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(config)

    start = time.perf_counter()
    dataset = create_dataset(config)
    logger.info(dataset)
    interactions = len(dataset.inter_feat)  # build() below replaces inter_feat by prefix examples
    train_data, valid_data, test_data = data_preparation(config, dataset)
    data_seconds = time.perf_counter() - start

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model)
    flops = get_flops(model, dataset, config["device"], logger, construct_transform(config))
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    epoch_seconds: list[float] = []
    valid_seconds: list[float] = []
    saved_epochs: list[int] = []
    save_checkpoint = trainer._save_checkpoint
    valid_history: list[float] = []
    budget = spec.get("max_seconds")
    fit_started = time.perf_counter()
    train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

    def _train_epoch(*args: Any, **kwargs: Any) -> Any:
        if budget is not None and epoch_seconds and time.perf_counter() - fit_started >= budget:
            raise _Budget
        return train_epoch(*args, **kwargs)

    def _valid_epoch(*args: Any, **kwargs: Any) -> Any:
        score, result = valid_epoch(*args, **kwargs)
        valid_history.append(float(score))
        return score, result

    trainer._train_epoch = _timed(_train_epoch, epoch_seconds)
    trainer._valid_epoch = _timed(_valid_epoch, valid_seconds)

    def _note_checkpoint(epoch: int, *args: Any, **kwargs: Any) -> None:
        saved_epochs.append(epoch)
        save_checkpoint(epoch, *args, **kwargs)

    trainer._save_checkpoint = _note_checkpoint

    progress_path, resume_path = Path("progress.json"), Path("resume.pth")
    resumed_from = None
    if spec.get("resume") and progress_path.exists():
        progress = json.loads(progress_path.read_text())
        trainer.resume_checkpoint(progress["resume_file"])
        # resume_checkpoint points saved_model_file at the file it read; best weights go where they went.
        trainer.saved_model_file = progress["best_model_file"]
        trainer.best_valid_result = progress["best_valid_result"]
        epoch_seconds += progress["epoch_seconds"]
        valid_seconds += progress["valid_seconds"]
        valid_history += progress["valid_history"]
        saved_epochs += progress["saved_epochs"]
        resumed_from = trainer.start_epoch

    def _save_progress(epoch: int, valid_score: float) -> None:
        save_checkpoint(epoch, verbose=False, saved_model_file=str(resume_path))
        record = {
            "resume_file": str(resume_path.resolve()),
            "best_model_file": trainer.saved_model_file,
            "best_valid_result": _plain(dict(trainer.best_valid_result or {})),
            "epoch_seconds": epoch_seconds,
            "valid_seconds": valid_seconds,
            "valid_history": valid_history,
            "saved_epochs": saved_epochs,
        }
        tmp = progress_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(progress_path)  # a kill mid-write leaves the previous record whole

    start = time.perf_counter()
    stopped = "early stopping or epochs"
    try:
        best_valid_score, best_valid_result = trainer.fit(
            train_data,
            valid_data,
            saved=True,
            show_progress=config["show_progress"],
            callback_fn=_save_progress,
        )
    except _Budget:
        stopped = f"time budget ({budget:.0f} s)"
        epoch_seconds.pop()  # the refused epoch never ran
        best_valid_score, best_valid_result = trainer.best_valid_score, trainer.best_valid_result
        logger.info(f"time budget of {budget} s spent: testing the best checkpoint so far")
    fit_seconds = time.perf_counter() - start

    start = time.perf_counter()
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=config["show_progress"])
    eval_seconds = time.perf_counter() - start
    test_filtered = filtered_test(config, dataset, trainer.model, test_data)
    logger.info(f"best valid: {best_valid_result}")
    logger.info(f"test result: {test_result}")
    logger.info(f"test result, history filtered: {test_filtered}")

    train_seconds = sum(epoch_seconds)
    return {
        "device": str(config["device"]),
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "python": platform.python_version(),
            "recbole": recbole.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "scipy": scipy.__version__,
        },
        "dataset_stats": {
            "users": dataset.user_num - 1,  # RecBole counts the [PAD] token
            "items": dataset.item_num - 1,
            "interactions": interactions,
            "prefix_examples": len(dataset.inter_feat),
            "train_sequences": len(train_data._dataset),
            "valid_sequences": len(valid_data._dataset),
            "test_sequences": len(test_data._dataset),
        },
        "flops": _plain(flops),
        "seconds": {
            "data": data_seconds,
            "fit": fit_seconds,
            "train_epochs_total": train_seconds,
            "valid_total": sum(valid_seconds),
            "eval": eval_seconds,
        },
        "epoch_seconds": epoch_seconds,
        "valid_seconds": valid_seconds,
        "epochs_run": len(epoch_seconds),
        "stopped": stopped,
        "resumed_at_epoch": resumed_from,
        "valid_ndcg@10_history": valid_history,
        "seconds_per_epoch": train_seconds / len(epoch_seconds),
        # RecBole numbers epochs from 0; the checkpoint reloaded for the test is the last one saved.
        "best_epoch": saved_epochs[-1] + 1 if saved_epochs else None,
        "best_valid_score": _plain(best_valid_score),
        "best_valid_result": _plain(dict(best_valid_result or {})),
        "test_result": _plain(dict(test_result)),
        "test_result_filtered": test_filtered,
    }


def main(argv: list[str]) -> int:
    """Entry point: ``_recbole_inner.py SPEC.json RESULT.json``."""
    if len(argv) != 2:
        print("usage: _recbole_inner.py SPEC.json RESULT.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    result = run(spec)
    Path(argv[1]).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

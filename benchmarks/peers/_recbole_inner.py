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
are wall-clock timers around dataset preparation, ``fit`` and the test ``evaluate``, and instance-level
wrappers that time every training epoch and validation pass and note which epoch was checkpointed.
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
    trainer._train_epoch = _timed(trainer._train_epoch, epoch_seconds)
    trainer._valid_epoch = _timed(trainer._valid_epoch, valid_seconds)

    def _note_checkpoint(epoch: int, *args: Any, **kwargs: Any) -> None:
        saved_epochs.append(epoch)
        save_checkpoint(epoch, *args, **kwargs)

    trainer._save_checkpoint = _note_checkpoint

    start = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=True, show_progress=config["show_progress"]
    )
    fit_seconds = time.perf_counter() - start

    start = time.perf_counter()
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=config["show_progress"])
    eval_seconds = time.perf_counter() - start
    logger.info(f"best valid: {best_valid_result}")
    logger.info(f"test result: {test_result}")

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
        "seconds_per_epoch": train_seconds / len(epoch_seconds),
        # RecBole numbers epochs from 0; the checkpoint reloaded for the test is the last one saved.
        "best_epoch": saved_epochs[-1] + 1 if saved_epochs else None,
        "best_valid_score": _plain(best_valid_score),
        "best_valid_result": _plain(dict(best_valid_result or {})),
        "test_result": _plain(dict(test_result)),
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

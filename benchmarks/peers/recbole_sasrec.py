#!/usr/bin/env python3
"""Peer baseline: RecBole 1.2.1's SASRec on MovieLens, timed, for comparison with freshrec's SASRec.

Run with the system ``python3`` (this file uses the standard library only)::

    python3 benchmarks/peers/recbole_sasrec.py --dataset ml-100k --data-dir /work/shared/data/ml-100k
    python3 benchmarks/peers/recbole_sasrec.py --dataset ml-100k --quick   # 2 epochs, max length 20
    python3 benchmarks/peers/recbole_sasrec.py --dataset ml-latest-small --max-len 50 --resume  # continue

A run longer than one sitting can be continued: after every validated epoch the inner runner saves the
trainer's whole state and the epoch record in the work folder, and ``--resume`` (with the same options)
picks up at the next epoch; the JSON then covers every epoch of the run (``resumed_at_epoch`` says where
this invocation started).

What it does:

1. Creates ``<repo>/benchmarks/.venvs/recbole`` if missing and installs :data:`REQUIREMENTS` there
   (re-installs when that list changes). RecBole itself runs in a subprocess with that venv's python
   (``_recbole_inner.py`` next to this file), with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` so that
   torch >= 2.6 (default ``weights_only=True``) can still reload RecBole's pickled checkpoint.
2. Converts the raw ratings into a RecBole atomic file
   ``<repo>/benchmarks/.work/recbole/<dataset>/fr-<dataset>/fr-<dataset>.inter`` with columns
   ``user_id:token item_id:token rating:float timestamp:float``. Every rating is kept (no rating
   threshold, no k-core or count filter) and counts as one implicit interaction; RecBole loads only
   user, item and timestamp. The RecBole dataset is named ``fr-<dataset>`` on purpose: for a dataset
   literally named ``ml-100k`` RecBole 1.2.1 ignores ``data_path`` and reads its own bundled copy
   (``recbole/dataset_example/ml-100k``), and also applies ``properties/dataset/ml-100k.yaml``.
3. Trains SASRec (full-softmax CE loss, no negative sampling, max length 200, 2 layers x 2 heads,
   hidden 64, inner 256, dropout 0.5, Adam lr 1e-3, batch 2048, seed 2020) with leave-one-out by
   timestamp (per user: last interaction = test, second last = validation), full ranking against the
   catalogue, early stopping on validation NDCG@10 (patience ``stopping_step``, default 10), reloads
   the best checkpoint and tests it. The JSON result (``--out``) holds the test metrics, the epoch
   timings, the config, the library versions and the machine.

How RecBole's protocol differs from freshrec's (checked in the RecBole 1.2.1 source installed in the
venv):

* **No seen-item filtering for sequential models.** ``FullSortEvalDataLoader.collate_fn``
  (``recbole/data/dataloader/general_dataloader.py``) returns ``history_index = None`` when
  ``config["MODEL_TYPE"] == ModelType.SEQUENTIAL`` (the ``uid2history_item`` table is only built for
  non-sequential models), and ``Trainer._full_sort_batch_eval`` (``recbole/trainer/trainer.py``) then
  only sets ``scores[:, 0] = -inf`` (the padding item) and skips ``scores[history_index] = -inf``.
  So the held-out item is ranked against the full catalogue *including* items already in the user's
  history; these figures correspond to freshrec's ``filter_seen=False``, not to its default. (The
  config also has to say ``repeatable: True``: RecBole refuses sequential models otherwise.)
* **Timestamp ties are broken stably, by row order in the atomic file.** ``Interaction.sort``
  (``recbole/data/interaction.py``) sorts one key at a time with ``np.argsort(key, kind="stable")``;
  ``SequentialDataset.data_augmentation`` sorts by ``[user_id, timestamp]`` and ``Dataset.build`` then
  sorts by ``timestamp`` before ``leave_one_out`` groups rows per user, so equal keys keep file order.
  Float fields become ``torch.FloatTensor`` (float32) before that sort, so Unix timestamps lose
  precision (float32 spacing is 64 s near 1e9 and 128 s near 1.5e9) and distinct nearby timestamps
  tie. This script therefore writes the ``.inter`` rows pre-sorted by (user, timestamp) with a stable
  sort over the raw file order; since float32 rounding is monotone, RecBole's order then equals the
  exact order "timestamp, then raw file order", which is how freshrec's ``UserSequence`` orders
  equal timestamps (``bisect_right``, arrival order).
* **Every prefix is a training example.** ``SequentialDataset.data_augmentation``
  (``recbole/data/dataset/sequential_dataset.py``) turns a user sequence ``i1..in`` into the
  examples ``<i1> -> i2``, ``<i1,i2> -> i3``, ..., each truncated to the last
  ``MAX_ITEM_LIST_LENGTH`` items, and SASRec's CE loss scores only the last position of each; the
  leave-one-out split is done on these examples, so a user contributes ``n - 3`` training examples
  (rather than one sequence with a loss at every position), and the test input includes the
  validation item.
* Repeated (user, item) pairs are kept as separate interactions (``rm_dup_inter`` is off); none of
  the MovieLens rating files has any.
* Metric values are rounded to 4 decimals (RecBole's ``metric_decimal_place`` default), also when
  comparing validation scores for early stopping; a tie counts as an improvement (``>=``). Equal
  scores are ordered by ``torch.topk`` (unspecified), not by item index.

Cost: every prefix example is padded to ``MAX_ITEM_LIST_LENGTH`` and runs through the whole
transformer, so one epoch on ml-100k is ~97K length-200 sequences (~48 batches of 2048). On a shared
2-core CPU that measured ~36 min per epoch; ``--max-len`` (RecBole's own default is 50) and a CUDA
device (used automatically when the venv's torch sees one) are the ways to make it affordable.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV = REPO / "benchmarks" / ".venvs" / "recbole"
WORK = REPO / "benchmarks" / ".work" / "recbole"
RESULTS = REPO / "benchmarks" / "results"
INNER = HERE / "_recbole_inner.py"

#: What goes into the venv. recbole 1.2.1 declares only lower bounds (plus ray<=2.6.3, which has
#: Python 3.11 wheels), so without caps pip picks today's releases, which 1.2.1 predates.
REQUIREMENTS: tuple[str, ...] = (
    "recbole==1.2.1",
    # The CPU wheel in /opt/wheels; any other version would pull a multi-GB CUDA build.
    "torch==2.13.0",
    # recbole.config.Config.compatibility_settings() runs ``np.float = np.float_`` (and np.complex_,
    # np.unicode_), aliases NumPy 2.0 removed: every Config() raises AttributeError on numpy 2.
    "numpy<2",
    # pandas 3 makes Copy-on-Write the only mode, so RecBole's ``feat[field].fillna(..., inplace=True)``
    # (Dataset._fill_nan) silently stops filling (ChainedAssignmentError warning); pandas 2 still
    # honours it.
    "pandas<3",
)

#: Raw rating files: dataset -> (file name, format).
SOURCES: dict[str, tuple[str, str]] = {
    "ml-100k": ("u.data", "tab"),
    "ml-latest-small": ("ratings.csv", "csv"),
    "ml-1m": ("ratings.dat", "colons"),
}

QUICK_EPOCHS = 2
#: --quick also shortens sequences (unless --max-len is given): at length 200 one epoch on ml-100k is
#: ~48 batches of ~30 s each on a 2-core machine.
QUICK_MAX_LEN = 20


def venv_python() -> Path:
    """The RecBole venv's interpreter."""
    return VENV / "bin" / "python"


def ensure_venv() -> None:
    """Create the RecBole venv and install :data:`REQUIREMENTS`, unless already done for this list."""
    stamp = VENV / ".freshrec-requirements"
    wanted = "\n".join(REQUIREMENTS) + "\n"
    if venv_python().exists() and stamp.exists() and stamp.read_text() == wanted:
        return
    if not venv_python().exists():
        print(f"creating venv {VENV}", flush=True)
        venv.create(VENV, with_pip=True, clear=True)
    print(f"installing into {VENV}: {' '.join(REQUIREMENTS)}", flush=True)
    subprocess.run([str(venv_python()), "-m", "pip", "install", "--quiet", *REQUIREMENTS], check=True)
    stamp.write_text(wanted)


def read_ratings(dataset: str, data_dir: Path) -> Iterator[tuple[str, str, str, str]]:
    """Yield ``(user, item, rating, timestamp)`` strings from a raw MovieLens file, in file order."""
    name, fmt = SOURCES[dataset]
    path = data_dir / name
    if not path.is_file():
        raise SystemExit(f"{path} not found (--data-dir should hold {name} for {dataset})")
    with path.open(newline="", encoding="utf-8") as f:
        if fmt == "csv":
            reader = csv.reader(f)
            header = next(reader)
            if header[:4] != ["userId", "movieId", "rating", "timestamp"]:
                raise SystemExit(f"{path}: unexpected header {header}")
            rows: Iterator[list[str]] = reader
        elif fmt == "tab":
            rows = (line.rstrip("\r\n").split("\t") for line in f)
        else:
            rows = (line.rstrip("\r\n").split("::") for line in f)
        for lineno, row in enumerate(rows, start=2 if fmt == "csv" else 1):
            if len(row) != 4:
                raise SystemExit(f"{path}:{lineno}: expected 4 fields, got {len(row)}")
            yield row[0], row[1], row[2], row[3]


def write_atomic(dataset: str, data_dir: Path, name: str, dest: Path) -> dict[str, int]:
    """Write ``dest/<name>/<name>.inter`` sorted stably by (user, timestamp); return basic counts."""
    rows = list(read_ratings(dataset, data_dir))
    rows.sort(key=lambda r: (int(r[0]), int(r[3])))  # stable: equal keys keep raw file order
    folder = dest / name
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{name}.inter").open("w", encoding="utf-8") as f:
        f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        f.writelines(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows)
    return {
        "interactions": len(rows),
        "users": len({r[0] for r in rows}),
        "items": len({r[1] for r in rows}),
    }


def recbole_config(args: argparse.Namespace, data_path: Path, cuda: bool) -> dict[str, Any]:
    """The RecBole ``config_dict``: our protocol where RecBole allows it, RecBole defaults otherwise."""
    return {
        "data_path": str(data_path),
        "checkpoint_dir": str(data_path / "saved"),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        # no filtering of any kind
        "rm_dup_inter": None,
        "val_interval": None,
        "threshold": None,
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        # model
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "hidden_size": 64,
        "n_layers": 2,
        "n_heads": 2,
        "inner_size": 256,
        "hidden_dropout_prob": 0.5,
        "attn_dropout_prob": 0.5,
        # training
        "epochs": args.epochs,
        "train_batch_size": args.batch_size,
        "learning_rate": 0.001,
        "stopping_step": args.stopping_step,
        "seed": args.seed,
        "reproducibility": True,
        # evaluation
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "repeatable": True,
        "metrics": ["Recall", "NDCG", "MRR", "Hit"],
        "topk": [10, 20],
        "valid_metric": "NDCG@10",
        # runtime; RecBole derives ``device`` from gpu_id and CUDA availability
        "use_gpu": cuda,
        "gpu_id": "0" if cuda else "",
        "show_progress": False,
    }


def cuda_available() -> bool:
    """Whether torch in the RecBole venv sees a CUDA device."""
    probe = subprocess.run(
        [str(venv_python()), "-c", "import torch; print(torch.cuda.is_available())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() == "True"


def cpu_info() -> dict[str, Any]:
    """CPU model name and core counts of this machine."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "logical_cores": os.cpu_count(), "usable_cores": usable}


def _freshrec_row(dataset: str, paths: list[Path] | None = None) -> dict[str, Any] | None:
    """freshrec's own figures for the same files, from ``benchmarks/offline_quality.py``'s JSON.

    ``paths``: one or more such JSONs (default ``offline_<dataset>.json``); several (seeds of one setting)
    give their mean, with each run's NDCG@10 kept in ``runs``.
    """
    paths = paths or [RESULTS / f"offline_{dataset}.json"]
    found = [p for p in paths if p.is_file()]
    if not found:
        return None
    runs = [json.loads(p.read_text()) for p in found]

    def mean_of(key: str) -> dict[str, float]:
        rows = [r["metrics"].get(key, {}) for r in runs]
        return {k.replace("hr@", "hit@"): sum(r[k] for r in rows) / len(rows) for k in rows[0]} if rows[0] else {}

    def where(p: Path) -> str:
        return str(p.resolve().relative_to(REPO)) if p.resolve().is_relative_to(REPO) else str(p)

    return {
        "source": ", ".join(where(p) for p in found),
        "filtered": mean_of("model"),
        "unfiltered": mean_of("model_unfiltered"),
        "train_seconds": sum(r["training"]["seconds"] for r in runs) / len(runs),
        "epochs": sum(r["training"]["epochs"] for r in runs) / len(runs),
        "max_len": runs[0].get("settings", {}).get("model", {}).get("max_len"),
        "runs": [
            {"ndcg@10": r["metrics"]["model"]["ndcg@10"], "seed": r.get("settings", {}).get("train", {}).get("seed")}
            for r in runs
        ],
    }


def resumed(result: dict[str, Any]) -> bool:
    """Whether the run spans several sittings (``--resume``), so ``seconds.fit`` covers the last one only."""
    return result.get("resumed_at_epoch") is not None


def whole_run_seconds(result: dict[str, Any]) -> float:
    """RecBole's training plus validation seconds over every epoch of the run, all sittings included."""
    return result["seconds"]["train_epochs_total"] + result["seconds"]["valid_total"]


def time_ratio(result: dict[str, Any], ours: dict[str, Any]) -> str:
    """freshrec's mean training seconds over RecBole's, as the ratio line prints it.

    ``seconds.fit`` is one invocation's wall time, so for a resumed run it covers the last sitting only.
    Then the line divides by all the run's epochs instead (training plus validation, summed over the
    sittings) and, because sittings on a shared CPU inflate that sum, also by the epochs at the pace of
    the fastest one, the least flattering of the three for freshrec that still covers the whole run.
    """
    sec = result["seconds"]
    last = ours["train_seconds"] / sec["fit"]
    if not resumed(result):
        return f"{last:.2f}x"
    whole = whole_run_seconds(result)
    paced = result["epochs_run"] * min(result["epoch_seconds"]) + sec["valid_total"]
    return (
        f"{ours['train_seconds'] / paced:.2f}x of RecBole's {result['epochs_run']} epochs at its fastest"
        f" epoch's pace ({paced:.0f} s); {ours['train_seconds'] / whole:.2f}x of their measured sum over"
        f" sittings ({whole:.0f} s); {last:.2f}x of its last sitting alone ({sec['fit']:.0f} s)"
    )


def summary(result: dict[str, Any]) -> str:
    """Both rows in one table: RecBole's SASRec and freshrec's (when its offline result exists), each
    under both protocols (history filtered = freshrec's default; unfiltered = RecBole's), with training
    time."""
    sec = result["seconds"]
    recbole_seconds = whole_run_seconds(result) if resumed(result) else sec["fit"]
    rows = [
        ("RecBole SASRec", "filtered", result.get("test_result_filtered"), recbole_seconds),
        ("RecBole SASRec", "unfiltered", result["test_result"], recbole_seconds),
    ]
    ours = result.get("freshrec")
    if ours:
        label = f"freshrec (x{len(ours['runs'])})" if len(ours.get("runs", [])) > 1 else "freshrec"
        rows += [
            (label, "filtered", ours["filtered"], ours["train_seconds"]),
            (label, "unfiltered", ours["unfiltered"] or None, ours["train_seconds"]),
        ]
    lines = [
        f"RecBole {result['versions']['recbole']} SASRec on {result['dataset']}"
        f" ({result['dataset_stats']['users']} users, {result['dataset_stats']['items']} items,"
        f" {result['dataset_stats']['interactions']} interactions; max length"
        f" {result['config']['MAX_ITEM_LIST_LENGTH']}; device {result['device']})",
        f"  {'model':<16}{'protocol':<12}{'HR@10':>8}{'NDCG@10':>9}{'MRR@10':>8}{'train s':>9}",
    ]
    for name, protocol, m, seconds in rows:
        if m:
            lines.append(
                f"  {name:<16}{protocol:<12}{m['hit@10']:>8.4f}{m['ndcg@10']:>9.4f}{m['mrr@10']:>8.4f}{seconds:>9.0f}"
            )
    sittings = (
        f" over several sittings (the last, from epoch {result['resumed_at_epoch']}: {sec['fit']:.0f} s)"
        if resumed(result)
        else ""
    )
    lines.append(
        f"  RecBole: epochs run {result['epochs_run']} ({result.get('stopped', 'early stopping or epochs')}),"
        f" best epoch {result['best_epoch']}, {result['seconds_per_epoch']:.1f} s/epoch (training only);"
        f" train {sec['train_epochs_total']:.0f} s + validation {sec['valid_total']:.0f} s{sittings}"
    )
    if ours:
        runs = ours.get("runs", [])
        mean = " (mean of seeds " + ", ".join(str(r["seed"]) for r in runs) + ")" if len(runs) > 1 else ""
        lines.append(
            f"  freshrec{mean}: {ours['epochs']:.0f} epochs, max length {ours['max_len']} (from {ours['source']})"
        )
        if result.get("test_result_filtered") and ours["filtered"]:
            ratio = ours["filtered"]["ndcg@10"] / result["test_result_filtered"]["ndcg@10"]
            unfiltered = (
                f", {ours['unfiltered']['ndcg@10'] / result['test_result']['ndcg@10']:.2f}x unfiltered"
                if ours["unfiltered"]
                else ""
            )
            times = time_ratio(result, ours)
            lines.append(f"  freshrec / RecBole: NDCG@10 {ratio:.2f}x filtered{unfiltered}; training time {times}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--dataset", choices=sorted(SOURCES), required=True)
    p.add_argument(
        "--data-dir",
        type=Path,
        help="folder holding the raw ratings file (default: <repo>/../shared/data/<dataset>)",
    )
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--max-len", type=int, help="MAX_ITEM_LIST_LENGTH (default 200)")
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--stopping-step", type=int, default=10, help="early-stopping patience (RecBole default)")
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument(
        "--max-seconds",
        type=float,
        help="wall-clock budget for training: no epoch starts after it; the best checkpoint so far is tested",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in the work folder (same options) from its last validated epoch",
    )
    p.add_argument(
        "--threads", type=int, help="torch intra-op threads inside the RecBole process (default: torch's choice)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: {QUICK_EPOCHS} epochs, max length {QUICK_MAX_LEN} unless --max-len is given",
    )
    p.add_argument("--out", type=Path, help="result JSON (default: benchmarks/results/recbole_<dataset>.json)")
    p.add_argument(
        "--freshrec",
        type=Path,
        nargs="+",
        help="freshrec's offline_quality JSON(s) for its row (several: their mean; default offline_<dataset>.json)",
    )
    p.add_argument(
        "--table",
        type=Path,
        metavar="RESULT_JSON",
        help="print the table for an earlier RecBole result (with --freshrec's rows) and exit; trains nothing",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = QUICK_EPOCHS
    if min(args.epochs, args.batch_size) < 1 or args.stopping_step < 0:
        p.error("--epochs and --batch-size must be >= 1, --stopping-step >= 0")
    if args.max_len is None:
        args.max_len = QUICK_MAX_LEN if args.quick else 200
    if args.data_dir is None:
        args.data_dir = REPO.parent / "shared" / "data" / args.dataset
    if args.out is None:
        suffix = "_quick" if args.quick else ""
        args.out = RESULTS / f"recbole_{args.dataset}{suffix}.json"
    return args


def main(argv: list[str] | None = None) -> int:
    """Prepare data and venv, run RecBole in a subprocess, write and print the result."""
    args = parse_args(argv)
    if args.table:
        if not args.table.is_file():
            print(f"--table: {args.table} not found", file=sys.stderr)
            return 2
        result = json.loads(args.table.read_text())
        if args.freshrec:
            result["freshrec"] = _freshrec_row(args.dataset, args.freshrec)
        print(summary(result))
        return 0
    ensure_venv()

    work = WORK / args.dataset
    name = f"fr-{args.dataset}"
    if not args.resume:
        shutil.rmtree(work / "saved", ignore_errors=True)  # old checkpoints; RecBole never cleans them
        for stale in ("progress.json", "resume.pth"):
            (work / stale).unlink(missing_ok=True)
    elif not (work / "progress.json").exists():
        print(f"--resume: no interrupted run in {work} (progress.json missing)", file=sys.stderr)
        return 2
    raw_stats = write_atomic(args.dataset, args.data_dir, name, work)
    cuda = cuda_available()
    spec = {
        "model": "SASRec",
        "dataset": name,
        "config": recbole_config(args, work, cuda),
        "max_seconds": args.max_seconds,
        "resume": args.resume,
    }
    spec_path, inner_out = work / "spec.json", work / "inner_result.json"
    if args.resume and spec_path.exists():
        previous = json.loads(spec_path.read_text())["config"]
        changed = sorted(k for k in previous.keys() | spec["config"].keys() if previous.get(k) != spec["config"].get(k))
        if changed:
            print(f"--resume: the interrupted run used other settings ({', '.join(changed)})", file=sys.stderr)
            return 2
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    inner_out.unlink(missing_ok=True)

    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    started = dt.datetime.now(dt.UTC)
    start = time.perf_counter()
    proc = subprocess.run([str(venv_python()), str(INNER), str(spec_path), str(inner_out)], cwd=work, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(f"RecBole run failed (exit {proc.returncode}); logs under {work / 'log'}", file=sys.stderr)
        return proc.returncode

    result: dict[str, Any] = {
        "peer": "recbole",
        "model": "SASRec",
        "dataset": args.dataset,
        "data_dir": str(args.data_dir),
        "raw_stats": raw_stats,
        "quick": args.quick,
        "date": started.isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_info(), "platform": platform.platform()},
        "requirements": list(REQUIREMENTS),
        "config": spec["config"],
        **json.loads(inner_out.read_text()),
        "freshrec": _freshrec_row(args.dataset, args.freshrec),
        "subprocess_wall_seconds": wall,
        "protocol_notes": [
            "test_result: full ranking WITHOUT removing items already in the user's history (RecBole's"
            " protocol for sequential models); test_result_filtered: the same weights with the user's"
            " history removed (freshrec's default protocol, computed by _recbole_inner.filtered_test)",
            "leave-one-out by timestamp; ties broken by raw file order (stable sorts)",
            "training examples = every prefix of each user's sequence (RecBole data augmentation)",
            "metrics rounded to 4 decimals by RecBole",
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(summary(result))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

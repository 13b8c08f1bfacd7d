"""Offline leave-one-out, full ranking on a real dataset: freshrec's model vs popularity.

    python benchmarks/offline_quality.py --dataset ml-100k
    python benchmarks/offline_quality.py --dataset ml-latest-small --set model.dropout=0.3
    python benchmarks/offline_quality.py --dataset ml-100k --config configs/ml-100k/recbole-settings.toml
    python benchmarks/offline_quality.py --dataset ml-1m --data-dir /path/to/ml-1m   # needs ratings.dat

Imports the files into a fresh data directory through `freshrec import`'s code path, trains through
`freshrec train`'s, and prints/writes the metrics with the training time and hyper-parameters.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from freshrec.config import load_settings
from freshrec.datasets.importer import import_file
from freshrec.datasets.synthetic import generate_shop
from freshrec.engine import Engine, build_engine
from freshrec.pipeline import train_and_publish
from machine import ROOT, SHARED_DATA, write_json

DATASETS: dict[str, tuple[str, list[str]]] = {
    # name: (default directory under shared/data, files to import in order: items first)
    "ml-100k": ("ml-100k", ["u.item", "u.data"]),
    "ml-latest-small": ("ml-latest-small", ["movies.csv", "ratings.csv"]),
    "ml-1m": ("ml-1m", ["movies.dat", "ratings.dat"]),
    "amazon-musical-instruments": ("amazon-musical-instruments-5core", ["Musical_Instruments.zip"]),
}


SYNTHETIC: dict[str, dict[str, Any]] = {  # the demo's generated shop, and a tiny one for smoke tests
    "synthetic-shop": {"n_users": 1500, "n_items": 600, "seed": 7},
    "tiny-shop": {"n_users": 80, "n_items": 40, "n_categories": 4, "seed": 1},
}


def parse_overrides(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """``section.field=value`` -> nested overrides; values are parsed as JSON when they can be."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        section, _, field = key.partition(".")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(section, {})[field] = value
    return out


def load_dataset(engine: Engine, dataset: str, data_dir: Path) -> None:
    """Import a dataset (or generate a synthetic shop) into the engine's stores."""
    if dataset in SYNTHETIC:
        shop = generate_shop(**SYNTHETIC[dataset])
        engine.upsert_items(shop.items)
        for i in range(0, len(shop.events), 1000):
            engine.ingest(shop.events[i : i + 1000])
    for name in DATASETS.get(dataset, ("", []))[1]:
        path = data_dir / name
        if not path.is_file():
            if name.endswith(("u.item", "movies.csv", "movies.dat")):
                continue  # items are optional: events create bare items
            raise SystemExit(f"missing {path}")
        import_file(engine, path, progress=True)


def run(
    dataset: str, data_dir: Path, overrides: dict[str, dict[str, Any]], work: Path, config: Path | None = None
) -> dict[str, Any]:
    settings = load_settings(config_file=config, storage={"data_dir": work}, **overrides)
    engine = build_engine(settings, load_model=False)
    try:
        load_dataset(engine, dataset, data_dir)
        report = train_and_publish(engine.stores, progress=True)
    finally:
        engine.close()
    fit = report.fit
    return {
        "dataset": dataset,
        "data": report.data,
        "metrics": report.metrics,
        "training": {k: v for k, v in fit.to_dict().items() if k != "history"},
        "history": [
            {"epoch": h.epoch, "loss": h.loss, "seconds": h.seconds, "ndcg@10": h.valid["ndcg@10"]} for h in fit.history
        ],
        "settings": {"model": settings.model.model_dump(), "train": settings.train.model_dump()},
    }


def print_row(result: dict[str, Any]) -> None:
    m, p, u = result["metrics"]["model"], result["metrics"]["popularity"], result["metrics"]["model_unfiltered"]
    t = result["training"]
    print(
        f"\n{result['dataset']}: {result['data']['users']} users, {result['data']['items']} items, "
        f"{result['data']['events']} events"
    )
    print(f"{'scorer':<22}{'HR@10':>8}{'NDCG@10':>9}{'MRR@10':>8}{'HR@20':>8}{'NDCG@20':>9}")
    for name, row in (("freshrec (filtered)", m), ("freshrec (unfiltered)", u), ("popularity (filtered)", p)):
        print(
            f"{name:<22}{row['hr@10']:>8.4f}{row['ndcg@10']:>9.4f}{row['mrr@10']:>8.4f}{row['hr@20']:>8.4f}"
            f"{row['ndcg@20']:>9.4f}"
        )
    print(
        f"training: {t['epochs']} epochs (best {t['best_epoch']}, {t['stopped']}), {t['seconds']:.1f}s total, "
        f"{t['train_seconds_per_epoch']:.2f}s/epoch, {t['positions_per_epoch']} positions/epoch, "
        f"{t['device']} {t['precision']}{' compiled' if t['compiled'] else ''}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted([*DATASETS, *SYNTHETIC]), required=True)
    parser.add_argument("--data-dir", type=Path, help="Directory holding the dataset files.")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML settings file (e.g. configs/ml-100k/recbole-settings.toml); --set overrides apply on top.",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="Settings override, e.g. --set model.dropout=0.5 (repeatable).",
    )
    parser.add_argument("--out", type=Path, help="JSON output (default benchmarks/results/offline_<dataset>.json).")
    args = parser.parse_args()
    data_dir = args.data_dir or SHARED_DATA / DATASETS.get(args.dataset, ("",))[0]
    with tempfile.TemporaryDirectory(prefix="freshrec-bench-") as work:
        result = run(args.dataset, data_dir, parse_overrides(args.overrides), Path(work), args.config)
    print_row(result)
    result["command"] = (
        "python benchmarks/offline_quality.py --dataset "
        + args.dataset
        + (f" --config {args.config}" if args.config else "")
        + "".join(f" --set {o}" for o in args.overrides)
    )
    write_json(args.out or ROOT / "benchmarks" / "results" / f"offline_{args.dataset}.json", result)


if __name__ == "__main__":
    main()

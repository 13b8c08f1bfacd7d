"""Objectives: the multi-task model (next interaction + next conversion) against the single-objective one.

    python benchmarks/objectives.py                          # the generated shop, 2,000 users
    python benchmarks/objectives.py --users 1500 --seed 8
    python benchmarks/objectives.py --quick                  # tiny shop and model: every path, no meaning

The generated shop (freshrec.datasets.synthetic) has views, clicks, carts and purchases; a carted item is
bought with its own probability, so what shoppers browse next and what they buy differ. The shop is
imported, folded into sequences and split as `freshrec train` does, and the same split is trained twice
with the same seed and settings (the trainer `freshrec train` uses; no ranker): once without a conversion
head (the single-objective model: next interaction only, what ``events.conversion_types = []`` trains)
and once with it (the default on data with purchases). Both are scored by the
offline leave-one-out, full ranking protocol, split by the held-out entry's type: users whose last entry
is a purchase ("next purchase") and the others ("next view": views, clicks and carts), for every
objective the model serves (engagement; with the head also conversion and blend).

Targets (issue: objectives): the conversion objective's next-purchase HR@10 >= 1.10x the
single-objective model's, at <= 3% loss of next-view NDCG@10.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import torch

from freshrec.config import Settings, load_settings
from freshrec.datasets.synthetic import generate_shop
from freshrec.engine import build_engine
from freshrec.model.data import Split, leave_one_out
from freshrec.model.evaluate import evaluate_split
from freshrec.model.sasrec import SASRec
from freshrec.model.train import Trainer
from freshrec.pipeline import conversion_codes, model_config, read_sequences
from freshrec.sequence import EventTypes
from machine import ROOT, write_json


def train_and_score(
    split: Split, settings: Settings, types: EventTypes, num_items: int, codes: tuple[int, ...]
) -> dict[str, Any]:
    """Train one model on ``split`` as `freshrec train` does (with a conversion head for ``codes``, none for
    ``()``) and score it per objective on the purchase codes of the default settings."""
    torch.manual_seed(settings.train.seed)
    model = SASRec(model_config(settings, num_items, len(types), codes))
    fit = Trainer(model, settings.train, progress=True).fit(split.train_items, split.train_types, split.valid)
    purchase = conversion_codes(settings, types, split.train_types)
    metrics = evaluate_split(model, split, conversion_types=purchase)
    return {
        "objectives": metrics["objectives"],
        "model": metrics["model"],
        "training": {k: v for k, v in fit.to_dict().items() if k != "history"},
    }


def load_split(shop_args: dict[str, Any], settings: Settings) -> tuple[Split, EventTypes, int, dict[str, Any]]:
    """The shop imported into a fresh store and split by the offline protocol."""
    engine = build_engine(settings, load_model=False)
    try:
        shop = generate_shop(**shop_args)
        engine.upsert_items(shop.items)
        for i in range(0, len(shop.events), 1000):
            engine.ingest(shop.events[i : i + 1000])
        data = read_sequences(engine.stores)
        return leave_one_out(data), engine.stores.types, data.num_items, data.data_range()
    finally:
        engine.close()


def summary(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The target's ratios: conversion's next-purchase HR@10 over the single model's, and the multi-task
    model's engagement next-view NDCG@10 over the single model's."""
    single = results["single"]["objectives"]["engagement"]
    multi = results["multi-task"]["objectives"]
    return {
        "purchase_hr10_conversion_vs_single": multi["conversion"]["conversions"]["hr@10"]
        / max(single["conversions"]["hr@10"], 1e-12),
        "purchase_hr10_blend_vs_single": multi["blend"]["conversions"]["hr@10"]
        / max(single["conversions"]["hr@10"], 1e-12),
        "view_ndcg10_engagement_vs_single": multi["engagement"]["others"]["ndcg@10"]
        / max(single["others"]["ndcg@10"], 1e-12),
        "view_ndcg10_blend_vs_single": multi["blend"]["others"]["ndcg@10"] / max(single["others"]["ndcg@10"], 1e-12),
    }


def print_table(results: dict[str, dict[str, Any]]) -> None:
    print(f"{'model':<12}{'objective':<12}{'purchase HR@10':>16}{'NDCG@10':>9}{'view HR@10':>12}{'NDCG@10':>9}")
    for run, result in results.items():
        for objective, parts in result["objectives"].items():
            c, o = parts["conversions"], parts["others"]
            print(
                f"{run:<12}{objective:<12}{c['hr@10']:>16.4f}{c['ndcg@10']:>9.4f}{o['hr@10']:>12.4f}{o['ndcg@10']:>9.4f}"
            )
    first = next(iter(results.values()))["objectives"]["engagement"]
    print(f"queries: {first['conversions']['n']} next purchases, {first['others']['n']} next views")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=30, help="Most epochs per model (train.epochs).")
    parser.add_argument("--quick", action="store_true", help="Tiny shop and model (the smoke test).")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "objectives_shop.json")
    args = parser.parse_args()
    shop_args: dict[str, Any] = {"n_users": args.users, "n_items": args.items, "seed": args.seed}
    if args.quick:
        shop_args = {"n_users": 150, "n_items": 40, "n_categories": 4, "seed": 1}
    model = {"dim": 16, "heads": 1, "layers": 1, "max_len": 20} if args.quick else {}
    train = {"epochs": 3, "compile": "off"} if args.quick else {"epochs": args.epochs}
    with tempfile.TemporaryDirectory(prefix="freshrec-objectives-") as work:
        settings = load_settings(storage={"data_dir": work}, model=model, train=train)
        split, types, num_items, data = load_split(shop_args, settings)
    codes = conversion_codes(settings, types, split.train_types)
    results = {
        "single": train_and_score(split, settings, types, num_items, ()),
        "multi-task": train_and_score(split, settings, types, num_items, codes),
    }
    print_table(results)
    ratios = summary(results)
    for name, value in ratios.items():
        print(f"{name}: {value:.3f}")
    command = "python benchmarks/objectives.py" + (
        " --quick"
        if args.quick
        else f" --users {args.users} --items {args.items} --seed {args.seed} --epochs {args.epochs}"
    )
    write_json(
        args.out,
        {
            "benchmark": "objectives",
            "shop": shop_args,
            "data": data,
            "settings": {"model": settings.model.model_dump(), "train": settings.train.model_dump()},
            "runs": results,
            "ratios": ratios,
            "command": command,
        },
    )


if __name__ == "__main__":
    main()

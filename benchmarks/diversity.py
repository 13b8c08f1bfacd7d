"""Diversity re-ranking (MMR over item embeddings): the trade-off between accuracy and diverse lists.

    python benchmarks/diversity.py --dataset synthetic-shop
    python benchmarks/diversity.py --dataset ml-100k
    python benchmarks/diversity.py --dataset tiny-shop --set train.epochs=2 --out /tmp/d.json   # smoke

Trains the model as `freshrec train` does (offline leave-one-out split), then for every test user ranks the
full catalogue (seen items filtered), re-ranks the best 40 with MMR at each diversity level, exactly as
serving does (:func:`freshrec.diversity.mmr`), and reports per level: NDCG@10 and HR@10 of the held-out item,
intra-list diversity (mean cosine distance between the list's items, from the model's item embeddings),
category diversity (share of item pairs without a common category, where items have categories) and
catalogue coverage (distinct items in all users' top 10 / catalogue size).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from freshrec.diversity import POOL_PER_SLOT, intra_list_diversity, mmr
from freshrec.model.data import leave_one_out
from freshrec.model.evaluate import model_scorer
from freshrec.model.rowmap import RowMap
from freshrec.pipeline import read_sequences
from freshrec.stores import open_stores
from machine import ROOT, SHARED_DATA, write_json
from offline_quality import DATASETS, SYNTHETIC, parse_overrides, run

K = 10
LEVELS = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7]


def curve(work: Path, levels: list[float]) -> dict[str, Any]:
    from freshrec.config import load_settings

    stores = open_stores(load_settings(storage={"data_dir": work}))
    try:
        loaded = stores.registry.load()
        data = read_sequences(stores, upto=loaded.meta.get("data", {}).get("max_offset"))
        split = leave_one_out(data, "test")
        rows = RowMap.from_item_ids(stores.catalog, loaded.item_ids).rows
        test = split.test.remap(rows, stores.types.translation(loaded.event_types))
        model = loaded.model
        table = model.item_emb.weight.detach().float()
        unit = torch.nn.functional.normalize(table, dim=1).numpy()
        categories = [frozenset()] + [
            frozenset(stores.catalog.categories(stores.catalog.internal_id(i, create=False))) for i in loaded.item_ids
        ]
        with_categories = sum(1 for c in categories if c) > len(categories) / 2
        scorer = model_scorer(model)
        totals = {d: {"ndcg": 0.0, "hr": 0.0, "ild": 0.0, "cat": 0.0, "items": set()} for d in levels}
        pool = POOL_PER_SLOT * K
        users = len(test)
        started = time.perf_counter()
        for lo in range(0, users, 256):
            hi = min(users, lo + 256)
            scores = scorer(test.items[lo:hi], test.types[lo:hi]).clone()  # an inference tensor is read-only
            scores[:, 0] = -torch.inf
            for b, history in enumerate(test.items[lo:hi]):
                scores[b, torch.as_tensor(history[history > 0])] = -torch.inf
            top_scores, top_items = torch.topk(scores, min(pool, scores.shape[1]), dim=1)
            for b in range(hi - lo):
                finite = torch.isfinite(top_scores[b])  # a catalogue smaller than the pool leaves -inf behind
                cand, cand_scores = top_items[b][finite].numpy(), top_scores[b][finite].numpy()
                target = int(test.targets[lo + b])
                for d in levels:
                    chosen = cand[mmr(cand_scores, unit[cand], K, d)]
                    t = totals[d]
                    hit = np.flatnonzero(chosen == target)
                    if len(hit):
                        t["hr"] += 1.0
                        t["ndcg"] += 1.0 / math.log2(int(hit[0]) + 2)
                    t["ild"] += intra_list_diversity(unit[chosen])
                    if with_categories:
                        cats = [categories[i] for i in chosen]
                        pairs = [(a, c) for n, a in enumerate(cats) for c in cats[n + 1 :]]
                        t["cat"] += sum(1 for a, c in pairs if not a & c) / max(1, len(pairs))
                    t["items"].update(chosen.tolist())
        out = []
        for d in levels:
            t = totals[d]
            out.append(
                {
                    "diversity": d,
                    "ndcg@10": t["ndcg"] / users,
                    "hr@10": t["hr"] / users,
                    "intra_list_diversity": t["ild"] / users,
                    "category_diversity": t["cat"] / users if with_categories else None,
                    "coverage@10": len(t["items"]) / (len(loaded.item_ids)),
                }
            )
        base = out[0]
        for row in out:
            row["ndcg_change"] = row["ndcg@10"] / base["ndcg@10"] - 1 if base["ndcg@10"] else None
            row["ild_change"] = row["intra_list_diversity"] / base["intra_list_diversity"] - 1
        return {"users": users, "pool": pool, "seconds": time.perf_counter() - started, "levels": out}
    finally:
        stores.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="synthetic-shop", choices=sorted([*DATASETS, *SYNTHETIC]))
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--levels", type=lambda s: [float(x) for x in s.split(",")], default=LEVELS)
    parser.add_argument("--set", action="append", default=[], help="section.field=value setting overrides")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    data_dir = args.data_dir or SHARED_DATA / DATASETS.get(args.dataset, (args.dataset, []))[0]
    with tempfile.TemporaryDirectory(prefix="freshrec-diversity-") as tmp:
        work = Path(tmp) / "data"
        trained = run(args.dataset, data_dir, parse_overrides(args.set), work)
        result = {
            "dataset": args.dataset,
            "k": K,
            "model_metrics": trained["metrics"]["model"],
            **curve(work, args.levels),
        }
    print(f"{'diversity':>9} {'NDCG@10':>8} {'change':>7} {'ILD':>6} {'change':>7} {'cat.div':>7} {'coverage':>8}")
    for row in result["levels"]:
        cat = f"{row['category_diversity']:.3f}" if row["category_diversity"] is not None else "-"
        print(
            f"{row['diversity']:>9.2f} {row['ndcg@10']:>8.4f} {row['ndcg_change']:>+7.1%} "
            f"{row['intra_list_diversity']:>6.3f} {row['ild_change']:>+7.1%} {cat:>7} {row['coverage@10']:>8.3f}"
        )
    out = args.out or ROOT / "benchmarks" / "results" / f"diversity_{args.dataset}.json"
    write_json(out, {"benchmark": "diversity", **result})


if __name__ == "__main__":
    main()

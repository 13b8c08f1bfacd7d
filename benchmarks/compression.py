"""Compressed serving indexes against the full-precision model: NDCG@10 of the served top-10 and the bytes
each index holds beside the model's item table.

    python benchmarks/compression.py --dataset ml-1m
    python benchmarks/compression.py --dataset synthetic-shop
    python benchmarks/compression.py --quick                     # tiny shop, 2 epochs (smoke test)

Trains the model as `freshrec train` does (the same Trainer and settings), then runs the offline
leave-one-out, full ranking protocol (seen items filtered) on the test set twice over: once scoring the
whole catalogue with the model in float32 (the full model), once with each index's top-10 as the served
list (`Index.topk` with the user's seen rows excluded; an item outside the top-10 counts as a miss). Also
reports how many of each top-10 agree with the float32 exact top-10. Memory at scale is
benchmarks/memory.py's question; this one is about what compression does to the answer.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch

from freshrec.config import load_settings
from freshrec.engine import build_engine
from freshrec.index.base import Index
from freshrec.index.exact import ExactIndex
from freshrec.index.faiss import FaissIndex
from freshrec.metrics import summarize
from freshrec.model.data import EvalSet, leave_one_out, pad_histories
from freshrec.model.evaluate import Scorer, model_scorer, target_ranks
from freshrec.model.sasrec import SASRec
from freshrec.model.train import Trainer
from freshrec.pipeline import model_config, read_sequences
from machine import ROOT, SHARED_DATA, write_json
from offline_quality import DATASETS, SYNTHETIC, load_dataset, parse_overrides

K = 10

#: index name -> how it is built over the model's float32 item table
INDEXES: dict[str, Any] = {
    "exact-fp32": lambda t: ExactIndex(t, torch.float32),
    "exact-bf16+rescore": lambda t: ExactIndex(t, torch.bfloat16),
    "faiss-flat": lambda t: FaissIndex(t, kind="flat"),
    "faiss-hnsw-sq8+rescore": lambda t: FaissIndex(t, kind="hnsw"),
}


def extra_bytes(index: Index) -> int:
    """Bytes an index holds beside the shared float32 table (codes or copies, and an HNSW graph)."""
    if isinstance(index, ExactIndex):
        return 0 if index.scan is index.table else index.scan.nbytes
    assert isinstance(index, FaissIndex)
    return len(faiss.serialize_index(index.index))


def index_scorer(model: SASRec, index: Index) -> Scorer:
    """Scores as the server sees them: the index's top-K with seen rows excluded, -inf everywhere else."""

    def score(items: list[np.ndarray], types: list[np.ndarray]) -> torch.Tensor:
        users = encode(model, items, types)
        ids, scores = index.topk(users, K, exclude=[np.unique(h) for h in items])
        out = torch.full((len(items), model.num_items + 1), float("-inf"))
        for b in range(len(items)):
            keep = np.isfinite(scores[b])
            out[b, torch.from_numpy(ids[b][keep])] = torch.from_numpy(scores[b][keep])
        return out

    return score


def encode(model: SASRec, items: list[np.ndarray], types: list[np.ndarray]) -> torch.Tensor:
    x, t, lengths = pad_histories(items, types, model.config.max_len)
    with torch.inference_mode():
        return model.encode(x, lengths, t).float()


def top_lists(model: SASRec, index: Index, data: EvalSet, batch: int = 256) -> list[np.ndarray]:
    """Every test user's served top-K rows."""
    out = []
    for start in range(0, len(data), batch):
        items, types = data.items[start : start + batch], data.types[start : start + batch]
        ids, scores = index.topk(encode(model, items, types), K, exclude=[np.unique(h) for h in items])
        out += [ids[b][np.isfinite(scores[b])] for b in range(len(items))]
    return out


def compare(model: SASRec, test: EvalSet) -> list[dict[str, Any]]:
    table = model.item_emb.weight.detach().float()
    shape = {"max_len": model.config.max_len}
    full = summarize(target_ranks(model_scorer(model), test, **shape), (K,))
    rows = [{"scorer": "full model (float32, whole catalogue)", **full, "agreement@10": 1.0, "extra_bytes": 0}]
    reference: list[np.ndarray] | None = None
    for name, build in INDEXES.items():
        t0 = time.perf_counter()
        index = build(table)
        build_seconds = time.perf_counter() - t0
        metrics = summarize(target_ranks(index_scorer(model, index), test, **shape), (K,))
        lists = top_lists(model, index, test)
        reference = reference if reference is not None else lists
        agreement = float(
            np.mean([len(np.intersect1d(a, b)) / max(1, len(b)) for a, b in zip(lists, reference, strict=True)])
        )
        rows.append(
            {
                "scorer": name,
                **metrics,
                "agreement@10": agreement,
                "extra_bytes": extra_bytes(index),
                "build_seconds": build_seconds,
            }
        )
    return rows


def train(
    dataset: str, data_dir: Path, overrides: dict[str, dict[str, Any]], work: Path
) -> tuple[SASRec, EvalSet, dict[str, Any]]:
    """The model `freshrec train` would fit on the dataset (without the ranker and content mapping a published
    version also gets: the index only sees the item table), with the test set of its split."""
    settings = load_settings(storage={"data_dir": work}, **overrides)
    engine = build_engine(settings, load_model=False)
    try:
        load_dataset(engine, dataset, data_dir)
        data = read_sequences(engine.stores)
        num_types = len(engine.types)
    finally:
        engine.close()
    split = leave_one_out(data)
    assert split.test is not None
    torch.manual_seed(settings.train.seed)
    fit = Trainer(SASRec(model_config(settings, data.num_items, num_types)), settings.train, progress=True)
    result = fit.fit(split.train_items, split.train_types, split.valid)
    described = {"users": len(data.users), "items": data.num_items, "epochs": result.epochs}
    return fit.model.eval(), split.test, described


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted([*DATASETS, *SYNTHETIC]), default="synthetic-shop")
    parser.add_argument("--data-dir", type=Path, help="Directory holding the dataset files.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="Settings override.")
    parser.add_argument("--quick", action="store_true", help="Smoke test: tiny shop, 2 epochs, dim 16.")
    parser.add_argument("--out", type=Path, help="JSON output (default benchmarks/results/compression_<dataset>.json).")
    args = parser.parse_args()
    if args.quick:
        args.dataset, args.overrides = "tiny-shop", ["train.epochs=2", "model.dim=16", *args.overrides]
    data_dir = args.data_dir or SHARED_DATA / DATASETS.get(args.dataset, ("",))[0]
    overrides = parse_overrides(args.overrides)
    with tempfile.TemporaryDirectory(prefix="freshrec-compress-") as work:
        model, test, trained = train(args.dataset, data_dir, overrides, Path(work))
    rows = compare(model, test)
    print(f"\n{args.dataset}: {len(test)} test users, {model.num_items} items, top-{K}, seen items filtered")
    print(f"{'scorer':<40}{'HR@10':>8}{'NDCG@10':>9}{'vs full':>9}{'agree@10':>10}{'extra MB':>10}")
    for row in rows:
        ratio = row["ndcg@10"] / rows[0]["ndcg@10"] if rows[0]["ndcg@10"] else float("nan")
        print(
            f"{row['scorer']:<40}{row['hr@10']:>8.4f}{row['ndcg@10']:>9.4f}{ratio:>9.4f}{row['agreement@10']:>10.3f}"
            f"{row['extra_bytes'] / 2**20:>10.2f}"
        )
    write_json(
        args.out or ROOT / "benchmarks" / "results" / f"compression_{args.dataset}.json",
        {
            "benchmark": "compression",
            "dataset": args.dataset,
            "data": trained,
            "protocol": "offline leave-one-out, full ranking (seen items filtered); served top-10 per index",
            "rows": rows,
            "command": "python benchmarks/compression.py --dataset "
            + args.dataset
            + "".join(f" --set {o}" for o in args.overrides),
        },
    )


if __name__ == "__main__":
    main()

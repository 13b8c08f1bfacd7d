"""Training speed: seconds per epoch and positions/s, freshrec's training step vs a plain PyTorch loop.

    python benchmarks/train_speed.py --dataset ml1m-synthetic          # ML-1M-sized generated set
    python benchmarks/train_speed.py --dataset ml-100k --epochs 3
    python benchmarks/train_speed.py --dataset ml-latest-small --variants fast,fast-eager

Variants (same model: d=64, 2 layers, 2 heads, max_len 200, full softmax over the catalogue):

* ``plain``: what a straightforward PyTorch SASRec does: every sequence padded to 200, fp32, logits for
  all 200 positions of every row (padding included), cross-entropy with ``ignore_index``, dropout on the
  attention weights as in the SASRec paper.
* ``fast-fp32-eager``: freshrec's step (length buckets, logits only where there is a target, no dropout on
  the attention weights so PyTorch's fused attention kernel runs), fp32, eager.
* ``fast-eager``: the same with bf16 autocast.
* ``fast``: the same with bf16 and ``torch.compile`` of the transformer and of the loss's per-chunk
  softmax (freshrec's default for datasets this size).
* ``fast-fp32``: compiled, fp32: what ``precision = "auto"`` gives on a CPU without native bf16, where
  bf16 autocast is emulated and slower than fp32.

Every variant trains on the same sequences: one window of the newest 200 per user, so positions per epoch
are identical; ``--windows`` gives the fast variants freshrec's training data, every interaction.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from freshrec.config import TrainSettings, load_settings
from freshrec.datasets.importer import import_file
from freshrec.datasets.synthetic import generate_shop
from freshrec.engine import build_engine
from freshrec.model.data import leave_one_out
from freshrec.model.sasrec import CausalSelfAttention, SASRec, SASRecConfig
from freshrec.model.train import Trainer
from freshrec.pipeline import read_sequences
from machine import ROOT, SHARED_DATA, write_json

FILES = {"ml-100k": ["ml-100k/u.data"], "ml-latest-small": ["ml-latest-small/ratings.csv"]}
SYNTHETIC = {  # generated sets: generate_shop arguments
    "ml1m-synthetic": {
        "n_users": 6040,
        "n_items": 3416,
        "n_categories": 16,
        "sessions_per_user": (5, 57),
        "days": 365,
        "seed": 11,
    },
    "tiny-synthetic": {"n_users": 60, "n_items": 40, "n_categories": 4, "seed": 1},
}


def load_split(dataset: str, work: Path) -> tuple[Any, int, dict[str, Any]]:
    engine = build_engine(load_settings(storage={"data_dir": work}), load_model=False)
    try:
        t0 = time.perf_counter()
        if dataset in SYNTHETIC:
            shop = generate_shop(**SYNTHETIC[dataset])
            for i in range(0, len(shop.items), 1000):
                engine.upsert_items(shop.items[i : i + 1000])
            for i in range(0, len(shop.events), 1000):
                engine.ingest(shop.events[i : i + 1000])
        else:
            for f in FILES[dataset]:
                import_file(engine, SHARED_DATA / f, progress=False)
        load_seconds = time.perf_counter() - t0
        data = read_sequences(engine)
    finally:
        engine.close()
    return leave_one_out(data), data.num_items, {**data.data_range(), "load_seconds": load_seconds}


def plain_epoch(
    model: SASRec,
    opt: torch.optim.Optimizer,
    items: list[np.ndarray],
    max_len: int,
    batch_size: int,
    rng: np.random.Generator,
) -> tuple[float, int]:
    """One epoch of the straightforward loop: pad to max_len, score all positions."""
    model.train()
    order = rng.permutation(len(items))
    positions = 0
    started = time.perf_counter()
    for start in range(0, len(order), batch_size):
        rows = [items[i] for i in order[start : start + batch_size] if len(items[i]) >= 2]
        x = torch.zeros(len(rows), max_len, dtype=torch.long)
        y = torch.zeros(len(rows), max_len, dtype=torch.long)
        for r, s in enumerate(rows):
            s = s[-(max_len + 1) :]
            x[r, : len(s) - 1] = torch.from_numpy(s[:-1])
            y[r, : len(s) - 1] = torch.from_numpy(s[1:])
        positions += int((y > 0).sum())
        logits = model(x) @ model.item_emb.weight[1:].T  # [B, L, N], padding positions included
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), (y - 1).reshape(-1), ignore_index=-1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - started, positions


class PaperAttention(CausalSelfAttention):
    """Causal attention with dropout on the attention weights, as the SASRec paper has it (freshrec has none:
    on CPU it forces PyTorch's unfused attention kernel)."""

    def __init__(self, attn: CausalSelfAttention, p: float) -> None:
        super().__init__(attn.qkv.in_features, attn.heads)
        self.load_state_dict(attn.state_dict())
        self.p = p

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        p = self.p if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        return y.transpose(1, 2).reshape(b, length, d)


def newest_window(items: list[np.ndarray], max_len: int = 200) -> list[np.ndarray]:
    """Each sequence's newest ``max_len + 1`` entries: one training window per user."""
    return [s[-(max_len + 1) :] for s in items]


def run_variant(variant: str, split: Any, num_items: int, epochs: int, windows: bool, seed: int) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = SASRec(SASRecConfig(num_items=num_items, dim=64, heads=2, layers=2, dropout=0.2, max_len=200))
    if variant == "plain":  # the paper's dropout on the attention weights
        for block in model.blocks:
            block.attn = PaperAttention(block.attn, 0.2)
    times: list[float] = []
    if variant == "plain":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            seconds, positions = plain_epoch(model, opt, split.train_items, 200, 128, rng)
            times.append(seconds)
        evaluator = Trainer(model, TrainSettings(device="cpu", precision="fp32", compile="off"), progress=False)
    else:
        precision = "fp32" if variant.startswith("fast-fp32") else "bf16"
        compile_ = "on" if variant in ("fast", "fast-fp32") else "off"
        settings = TrainSettings(epochs=1, patience=1, device="cpu", precision=precision, compile=compile_, seed=seed)
        evaluator = Trainer(model, settings, progress=False)
        items, types = split.train_items, split.train_types
        if not windows:
            items, types = newest_window(items), newest_window(types)
        batches = evaluator.prepare(items, types)
        rng = np.random.default_rng(seed)
        positions = batches.positions
        for _ in range(epochs):
            t0 = time.perf_counter()
            evaluator.run_epoch(batches, rng)
            times.append(time.perf_counter() - t0)
    steady = times[1:] or times
    t0 = time.perf_counter()
    valid = evaluator.evaluate(split.valid)
    eval_seconds = time.perf_counter() - t0
    return {
        "variant": variant,
        "epoch_seconds": [round(t, 2) for t in times],
        "seconds_per_epoch": statistics.median(steady),
        "first_epoch_seconds": times[0],
        "positions_per_epoch": positions,
        "positions_per_second": positions / statistics.median(steady),
        "sequences_per_second": len(split.train_items) / statistics.median(steady),
        f"valid_ndcg@10_after_{epochs}_epochs": valid["ndcg@10"],
        "eval_seconds": eval_seconds,
        "eval_users": len(split.valid),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=[*SYNTHETIC, *FILES], default="ml1m-synthetic")
    parser.add_argument("--epochs", type=int, default=3, help="Epochs per variant (the first includes compiling).")
    parser.add_argument("--variants", default="plain,fast-fp32-eager,fast-eager,fast")
    parser.add_argument("--windows", action="store_true", help="Train on every interaction (freshrec default).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true", help="Smoke test: tiny generated set, 1 epoch.")
    args = parser.parse_args()
    if args.quick:
        args.dataset, args.epochs, args.variants = "tiny-synthetic", 1, "plain,fast-eager"
    with tempfile.TemporaryDirectory(prefix="freshrec-speed-") as work:
        split, num_items, data = load_split(args.dataset, Path(work))
    print(
        f"{args.dataset}: {data['users']} users, {num_items} items, {data['events']} events "
        f"(loaded in {data['load_seconds']:.0f}s)"
    )
    rows = []
    for variant in args.variants.split(","):
        row = run_variant(variant, split, num_items, args.epochs, args.windows, args.seed)
        rows.append(row)
        print(
            f"{variant:<16} {row['seconds_per_epoch']:7.2f} s/epoch (first {row['first_epoch_seconds']:.1f}s)"
            f"  {row['positions_per_second']:9.0f} positions/s  {row['sequences_per_second']:7.0f} seq/s  "
            f"{row['positions_per_epoch']} positions/epoch  valid NDCG@10 "
            f"{row[f'valid_ndcg@10_after_{args.epochs}_epochs']:.4f}"
        )
    write_json(
        args.out or ROOT / "benchmarks" / "results" / f"train_speed_{args.dataset}.json",
        {
            "dataset": args.dataset,
            "data": data,
            "epochs": args.epochs,
            "windows": args.windows,
            "rows": rows,
            "command": f"python benchmarks/train_speed.py --dataset {args.dataset} --epochs {args.epochs}"
            f" --variants {args.variants}{' --windows' if args.windows else ''}",
        },
    )


if __name__ == "__main__":
    main()

"""Ranking metrics from the 0-based rank of the one relevant item per query.

With one relevant item, HR@K is 1 if it ranks in the top K; NDCG@K is 1 / log2(rank + 2) there (the ideal
DCG is 1); MRR@K is 1 / (rank + 1) there; all are 0 beyond K.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

DEFAULT_KS = (10, 20, 50)


def hit_rate(ranks: np.ndarray, k: int) -> float:
    """Share of queries whose item ranks in the top k. ``hit_rate(np.array([0, 3, 12]), 10)`` -> 2/3."""
    return float(np.mean(ranks < k)) if len(ranks) else 0.0


def ndcg_gains(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-query NDCG@k with one relevant item: 1 / log2(rank + 2) in the top k, else 0.

    >>> ndcg_gains(np.array([0, 10]), 10).tolist()
    [1.0, 0.0]
    """
    return np.where(ranks < k, 1.0 / np.log2(ranks.astype(np.float64) + 2.0), 0.0)


def ndcg(ranks: np.ndarray, k: int) -> float:
    """Mean NDCG@k with one relevant item per query.

    >>> round(ndcg(np.array([0, 1, 10]), 10), 4)   # (1 + 1/log2(3) + 0) / 3
    0.5436
    """
    return float(ndcg_gains(ranks, k).mean()) if len(ranks) else 0.0


def mrr(ranks: np.ndarray, k: int) -> float:
    """Mean reciprocal rank, cut at k. ``mrr(np.array([0, 1, 10]), 10)`` -> (1 + 1/2 + 0) / 3."""
    if not len(ranks):
        return 0.0
    return float(np.where(ranks < k, 1.0 / (ranks.astype(np.float64) + 1.0), 0.0).mean())


def summarize(ranks: np.ndarray, ks: Iterable[int] = DEFAULT_KS) -> dict[str, float]:
    """``{"hr@10": ..., "ndcg@10": ..., "mrr@10": ..., ...}`` for each k, plus ``"n"`` queries.

    >>> summarize(np.array([0, 4]), ks=[1, 5])
    {'hr@1': 0.5, 'ndcg@1': 0.5, 'mrr@1': 0.5, 'hr@5': 1.0, 'ndcg@5': 0.6934..., 'mrr@5': 0.6, 'n': 2}
    """
    ranks = np.asarray(ranks)
    out: dict[str, float] = {}
    for k in ks:
        out[f"hr@{k}"] = hit_rate(ranks, k)
        out[f"ndcg@{k}"] = ndcg(ranks, k)
        out[f"mrr@{k}"] = mrr(ranks, k)
    out["n"] = len(ranks)
    return out

"""Ranking metrics from the 0-based rank of the one relevant item per query.

With one relevant item, HR@K is 1 if it ranks in the top K; NDCG@K is 1 / log2(rank + 2) there (the ideal
DCG is 1); MRR@K is 1 / (rank + 1) there; all are 0 beyond K.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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


def reciprocal_ranks(ranks: np.ndarray) -> np.ndarray:
    """Per-query 1 / (rank + 1) with no cut-off: a graded reading of every query, so a comparison on a
    few hundred queries resolves smaller changes than NDCG@10, which is 0 for most of them.

    >>> reciprocal_ranks(np.array([0, 3, 99])).tolist()
    [1.0, 0.25, 0.01]
    """
    return 1.0 / (np.asarray(ranks, dtype=np.float64) + 1.0)


def paired_difference(after: np.ndarray, before: np.ndarray, users: Sequence[str] | None = None) -> dict[str, float]:
    """Mean per-query difference ``after - before`` and its standard error over *users* (a user's queries
    are averaged first: queries of one user are not independent evidence), with the relative change and
    its 95% interval.

    >>> d = paired_difference(np.array([0.5, 0.7, 0.4]), np.array([0.5, 0.5, 0.5]))
    >>> round(d["relative"], 3), round(d["se"], 3)
    (0.067, 0.088)
    """
    after, before = np.asarray(after, dtype=np.float64), np.asarray(before, dtype=np.float64)
    diff = after - before
    if users is None:
        per_user = diff
    else:
        _, which = np.unique(np.asarray(users, dtype=object), return_inverse=True)
        per_user = np.bincount(which, weights=diff) / np.bincount(which)
    se = float(per_user.std(ddof=1) / np.sqrt(len(per_user))) if len(per_user) > 1 else 0.0
    base = float(before.mean()) if len(before) else 0.0
    mean = float(diff.mean()) if len(diff) else 0.0

    def rel(x: float) -> float:
        return x / base if base else float("nan")

    return {
        "mean_diff": mean,
        "se": se,
        "n": float(len(diff)),
        "users": float(len(per_user)),
        "relative": rel(mean),
        "relative_ci95": [rel(mean - 1.96 * se), rel(mean + 1.96 * se)],
    }


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

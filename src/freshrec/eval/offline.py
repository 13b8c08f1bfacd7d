"""Offline leave-one-out, full ranking.

Protocol (the names used in every report): per user, time-ordered; the last interaction is test, the one
before validation, the rest trains. Each held-out item is ranked against **every** item in the
catalogue (no sampled negatives). Items already in the user's history are filtered out before ranking,
as SASRec and the published full-cross-entropy anchors do; the unfiltered figure (what RecBole's
sequential models report) is available with ``filter_seen=False``. Ties in score are broken by item
index, so a constant scorer gets no free hits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from freshrec.eval.metrics import DEFAULT_KS, summarize
from freshrec.model.data import EvalSet, pad_histories
from freshrec.model.device import autocast
from freshrec.model.sasrec import SASRec

#: Scores a batch of histories: (items, types) lists -> [B, N + 1] scores (column 0 is padding).
Scorer = Callable[[list[np.ndarray], list[np.ndarray]], torch.Tensor]


def rank_of_targets(
    scores: torch.Tensor, targets: torch.Tensor, exclude: list[np.ndarray] | None = None
) -> torch.Tensor:
    """0-based rank of each target among all items, after removing excluded items and padding.

    ``scores``: [B, N + 1] float; ``targets``: [B] int64; ``exclude[b]``: indices hidden for row b
    (a target that is itself excluded can never be hit).

    >>> s = torch.tensor([[0.0, 0.9, 0.5, 0.7, 0.7]])
    >>> rank_of_targets(s, torch.tensor([3])).tolist()
    [1]
    >>> rank_of_targets(s, torch.tensor([3]), exclude=[np.array([1])]).tolist()
    [0]
    """
    scores = scores.float().clone()
    scores[:, 0] = float("-inf")
    if exclude is not None:
        rows = np.concatenate([np.full(len(e), b, dtype=np.int64) for b, e in enumerate(exclude)] or [[]])
        cols = np.concatenate([np.asarray(e, dtype=np.int64) for e in exclude] or [[]])
        if len(rows):
            scores[torch.from_numpy(rows.astype(np.int64)), torch.from_numpy(cols.astype(np.int64))] = float("-inf")
    target_scores = scores.gather(1, targets[:, None])
    above = (scores > target_scores).sum(1)
    index = torch.arange(scores.shape[1])[None, :]
    tied_before = ((scores == target_scores) & (index < targets[:, None])).sum(1)
    return above + tied_before


def evaluate_scorer(
    scorer: Scorer,
    data: EvalSet,
    ks: Iterable[int] = DEFAULT_KS,
    batch_size: int = 512,
    filter_seen: bool = True,
    progress: bool = False,
) -> dict[str, float]:
    """Metrics of a scorer on an :class:`EvalSet` under the full-ranking protocol."""
    return summarize(target_ranks(scorer, data, batch_size, filter_seen, progress), ks)


def target_ranks(
    scorer: Scorer, data: EvalSet, batch_size: int = 512, filter_seen: bool = True, progress: bool = False
) -> np.ndarray:
    """0-based rank of each query's held-out item under the full-ranking protocol: [len(data)].

    Queries are scored in order of history length, so a batch is padded to lengths close to its own
    instead of to the longest history anywhere in it (a few long histories among many short ones would
    otherwise make most of each batch's attention and feed-forward work padding); ranks come back in
    ``data``'s order.
    """
    ranks = np.zeros(len(data), dtype=np.int64)
    order = np.argsort(np.fromiter((len(h) for h in data.items), dtype=np.int64, count=len(data)), kind="stable")
    for start in tqdm(range(0, len(data), batch_size), desc="ranking", disable=not progress, leave=False):
        batch = order[start : start + batch_size]
        items = [data.items[i] for i in batch]
        scores = scorer(items, [data.types[i] for i in batch])
        exclude = [np.unique(h) for h in items] if filter_seen else None
        targets = torch.from_numpy(data.targets[batch])
        ranks[batch] = rank_of_targets(scores.cpu(), targets, exclude).numpy()
    return ranks


def model_scorer(model: SASRec, device: torch.device | str = "cpu", amp_dtype: torch.dtype | None = None) -> Scorer:
    """Full-catalogue scores from the model's last position: [B, N + 1]."""

    dev = torch.device(device)

    def score(items: list[np.ndarray], types: list[np.ndarray]) -> torch.Tensor:
        x, t, lengths = pad_histories(items, types, model.config.max_len)
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode(), autocast(dev, amp_dtype):
                users = model.encode(x.to(dev), lengths.to(dev), t.to(dev))
                return users.float() @ model.item_emb.weight.float().T
        finally:
            model.train(was_training)

    return score


def popularity_scorer(train_items: list[np.ndarray], num_items: int) -> Scorer:
    """Global interaction counts over the training sequences: the popularity baseline."""
    counts = np.bincount(
        np.concatenate(train_items) if train_items else np.zeros(0, dtype=np.int64), minlength=num_items + 1
    )
    row = torch.from_numpy(counts[: num_items + 1].astype(np.float32))

    def score(items: list[np.ndarray], types: list[np.ndarray]) -> torch.Tensor:
        return row.expand(len(items), -1)

    return score

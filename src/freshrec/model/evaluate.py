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
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from freshrec.device import autocast
from freshrec.metrics import DEFAULT_KS, summarize
from freshrec.model.data import EvalSet, Split, pad_histories
from freshrec.model.sasrec import OBJECTIVES, SASRec

PROTOCOL = "offline leave-one-out, full ranking"

#: Scores a batch of histories: (items, types) lists -> [B, N + 1] scores (column 0 is padding).
Scorer = Callable[[list[np.ndarray], list[np.ndarray]], torch.Tensor]


#: Most history entries (rows x padded length) one scoring call of :func:`target_ranks` takes on a CPU.
MAX_BATCH_TOKENS = 8192


def batch_tokens(device: torch.device | str) -> int:
    """:func:`target_ranks`'s ``max_tokens`` for a device: cache-sized batches on a CPU, whole
    ``batch_size`` batches on an accelerator (which wants few, large calls)."""
    return MAX_BATCH_TOKENS if torch.device(device).type == "cpu" else 1 << 40


def rank_of_targets(
    scores: torch.Tensor, targets: torch.Tensor, exclude: list[np.ndarray] | None = None
) -> torch.Tensor:
    """0-based rank of each target among all items, after removing excluded items and padding.

    ``scores``: [B, N + 1] float; ``targets``: [B] int64; ``exclude[b]``: indices hidden for row b
    (a target that is itself excluded can never be hit). A target scored NaN (a model whose weights went
    non-finite) ranks last: no comparison with NaN is true, so it would otherwise rank first.

    >>> s = torch.tensor([[0.0, 0.9, 0.5, 0.7, 0.7]])
    >>> rank_of_targets(s, torch.tensor([3])).tolist()
    [1]
    >>> rank_of_targets(s, torch.tensor([3]), exclude=[np.array([1])]).tolist()
    [0]
    >>> rank_of_targets(torch.full((1, 5), float("nan")), torch.tensor([3])).tolist()
    [4]
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
    last = torch.full_like(above, scores.shape[1] - 1)
    return torch.where(torch.isnan(target_scores[:, 0]), last, above + tied_before)


def evaluate_scorer(
    scorer: Scorer,
    data: EvalSet,
    ks: Iterable[int] = DEFAULT_KS,
    batch_size: int = 512,
    filter_seen: bool = True,
    progress: bool = False,
    max_tokens: int = MAX_BATCH_TOKENS,
    max_len: int | None = None,
) -> dict[str, float]:
    """Metrics of a scorer on an :class:`EvalSet` under the full-ranking protocol (arguments as in
    :func:`target_ranks`)."""
    return summarize(target_ranks(scorer, data, batch_size, filter_seen, progress, max_tokens, max_len), ks)


def target_ranks(
    scorer: Scorer,
    data: EvalSet,
    batch_size: int = 512,
    filter_seen: bool = True,
    progress: bool = False,
    max_tokens: int = MAX_BATCH_TOKENS,
    max_len: int | None = None,
) -> np.ndarray:
    """0-based rank of each query's held-out item under the full-ranking protocol: [len(data)].

    Queries are scored in order of history length, in batches of at most ``batch_size`` queries and
    ``max_tokens`` padded entries, so a batch is padded to lengths close to its own (a few long histories
    among many short ones would otherwise make most of a batch's attention and feed-forward work padding)
    and its activations stay cache-sized (a 1,000-query shop holdout scored 40% faster in batches of
    ~8K entries than of 512 queries; histories of ML-100K's size 2x). ``max_len``: the scorer reads at
    most this many entries of a history (a model's ``max_len``), so longer ones count as that long. Ranks
    come back in ``data``'s order.

    >>> scorer = popularity_scorer([np.array([1, 1, 2])], num_items=3)
    >>> data = EvalSet(["u"], [np.array([2])], [np.array([0])], np.array([1]))
    >>> target_ranks(scorer, data).tolist()  # item 1 is the most popular item not yet seen
    [0]
    """
    ranks = np.zeros(len(data), dtype=np.int64)
    lengths = np.fromiter((len(h) for h in data.items), dtype=np.int64, count=len(data))
    if max_len is not None:
        lengths = np.minimum(lengths, max_len)
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = np.maximum(lengths[order], 1)
    with tqdm(total=len(data), desc="ranking", disable=not progress, leave=False) as bar:
        start = 0
        while start < len(order):
            # sorted ascending: the batch's last member sets its padded length
            window = sorted_lengths[start : start + batch_size]
            # rows x padded length only grows along the window: the batch is the prefix that fits
            size = max(1, int(np.count_nonzero(np.arange(1, len(window) + 1) * window <= max_tokens)))
            batch = order[start : start + size]
            items = [data.items[i] for i in batch]
            scores = scorer(items, [data.types[i] for i in batch])
            exclude = [np.unique(h) for h in items] if filter_seen else None
            targets = torch.from_numpy(data.targets[batch])
            ranks[batch] = rank_of_targets(scores.cpu(), targets, exclude).numpy()
            start += size
            bar.update(size)
    return ranks


def model_scorer(
    model: SASRec, device: torch.device | str = "cpu", amp_dtype: torch.dtype | None = None, conversion: float = 0.0
) -> Scorer:
    """Full-catalogue scores from the model's last position: [B, N + 1], for the objective with weight
    ``conversion`` on the conversion head (:data:`~freshrec.model.sasrec.OBJECTIVES`)."""

    dev = torch.device(device)

    def score(items: list[np.ndarray], types: list[np.ndarray]) -> torch.Tensor:
        x, t, lengths = pad_histories(items, types, model.config.max_len)
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode(), autocast(dev, amp_dtype):
                users = model.encode(x.to(dev), lengths.to(dev), t.to(dev))
                scores = users.float() @ model.item_emb.weight.float().T
                bias = model.item_bias(conversion)
                return scores if bias is None else scores + bias.float()
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


def evaluate_split(
    model: SASRec,
    split: Split,
    device: torch.device | str = "cpu",
    amp: torch.dtype | None = None,
    ks: Iterable[int] = DEFAULT_KS,
    progress: bool = False,
    conversion_types: Iterable[int] | None = None,
) -> dict[str, Any]:
    """The offline protocol on a split: the model's metrics (seen items filtered, and unfiltered) and
    popularity's (counted over the split's training sequences), on the test set (the validation set when
    the split has none), and per objective on conversion and other targets (:func:`objective_metrics`; the
    conversion type codes default to the model's own). Item indices must be the model's rows.

    >>> import numpy as np
    >>> from freshrec.model.data import SequenceData, leave_one_out
    >>> from freshrec.model.sasrec import SASRec, SASRecConfig
    >>> split = leave_one_out(SequenceData(["u"], [np.array([1, 2, 3, 4])], [np.ones(4, dtype=np.int64)], 4))
    >>> result = evaluate_split(SASRec(SASRecConfig(num_items=4, dim=8, heads=1, layers=1, max_len=8)), split)
    >>> result["protocol"], result["evaluated_on"], result["model"]["n"]
    ('offline leave-one-out, full ranking', 'test (last item)', 1)
    """
    target: EvalSet = split.test if split.test is not None else split.valid
    scorer = model_scorer(model.to(device), device, amp)
    shape = {"max_tokens": batch_tokens(device), "max_len": model.config.max_len}
    popularity = popularity_scorer(split.train_items, model.num_items)
    result = {
        "protocol": PROTOCOL,
        "evaluated_on": "test (last item)" if split.test is not None else "validation (last item)",
        "model": evaluate_scorer(scorer, target, ks, progress=progress, **shape),
        "popularity": evaluate_scorer(popularity, target, ks, **shape),
        "model_unfiltered": evaluate_scorer(scorer, target, ks, filter_seen=False, **shape),
    }
    codes = model.config.conversion_types if conversion_types is None else conversion_types
    objectives = objective_metrics(model, target, codes, device, amp, ks)
    if objectives:
        result["objectives"] = objectives
    return result


def objective_metrics(
    model: SASRec,
    data: EvalSet,
    conversion_types: Iterable[int],
    device: torch.device | str = "cpu",
    amp: torch.dtype | None = None,
    ks: Iterable[int] = DEFAULT_KS,
) -> dict[str, dict[str, dict[str, float]]]:
    """Per objective the model serves (:data:`~freshrec.model.sasrec.OBJECTIVES`; only ``engagement``
    without a conversion head), the protocol's metrics on the queries whose held-out entry is a conversion
    (an event of one of ``conversion_types``: ``"conversions"``) and on the others (``"others"``). Empty when
    ``data`` has no target types or no conversion target.

    >>> from freshrec.model.sasrec import SASRecConfig
    >>> model = SASRec(SASRecConfig(num_items=4, dim=8, heads=1, layers=1, max_len=8, conversion_types=(2,)))
    >>> data = EvalSet(["u", "v"], [np.array([1, 2])] * 2, [np.array([1, 1])] * 2, np.array([3, 4]), np.array([2, 1]))
    >>> result = objective_metrics(model, data, [2])
    >>> sorted(result), result["conversion"]["conversions"]["n"], result["conversion"]["others"]["n"]
    (['blend', 'conversion', 'engagement'], 1, 1)
    """
    codes = list(conversion_types)
    if data.target_types is None or not codes:
        return {}
    is_conversion = np.isin(data.target_types, codes)
    if not is_conversion.any():
        return {}
    parts = {"conversions": data.subset(is_conversion), "others": data.subset(~is_conversion)}
    shape = {"max_tokens": batch_tokens(device), "max_len": model.config.max_len}
    served = OBJECTIVES if model.conversion is not None else {"engagement": 0.0}
    return {
        name: {
            part: evaluate_scorer(model_scorer(model, device, amp, weight), queries, ks, **shape)
            for part, queries in parts.items()
            if len(queries)
        }
        for name, weight in served.items()
    }

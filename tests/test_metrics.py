"""Metrics checked against values computed by hand."""

import math

import numpy as np
import pytest
import torch

from freshrec.metrics import hit_rate, mrr, ndcg, paired_difference, reciprocal_ranks, summarize
from freshrec.model.data import EvalSet
from freshrec.model.evaluate import evaluate_scorer, rank_of_targets, target_ranks


def test_hand_checked_example() -> None:
    # Four users; their held-out items land at ranks 0, 2, 9 and 15 (0-based).
    ranks = np.array([0, 2, 9, 15])
    # HR@10: ranks 0, 2, 9 are inside the top 10 -> 3/4
    assert hit_rate(ranks, 10) == pytest.approx(0.75)
    # NDCG@10: (1/log2(2) + 1/log2(4) + 1/log2(11) + 0) / 4 = (1 + 0.5 + 0.289065...) / 4
    assert ndcg(ranks, 10) == pytest.approx((1 + 0.5 + 1 / math.log2(11)) / 4)
    assert ndcg(ranks, 10) == pytest.approx(0.4472663, abs=1e-6)
    # MRR@10: (1 + 1/3 + 1/10 + 0) / 4 = 0.358333...
    assert mrr(ranks, 10) == pytest.approx(0.3583333, abs=1e-6)
    # @20 counts rank 15 too
    assert hit_rate(ranks, 20) == 1.0
    assert mrr(ranks, 20) == pytest.approx((1 + 1 / 3 + 1 / 10 + 1 / 16) / 4)
    assert summarize(ranks, ks=[10])["n"] == 4


def test_ranking_filters_history_and_breaks_ties_by_index() -> None:
    # 6 items (+ padding column 0). The user has seen items 1 and 2; the target is item 4.
    scores = torch.tensor([[9.0, 0.9, 0.8, 0.7, 0.6, 0.6, 0.1]])
    target = torch.tensor([4])
    # unfiltered: items 1, 2, 3 score higher -> rank 3 (padding never counts)
    assert rank_of_targets(scores, target).item() == 3
    # filtered: 1 and 2 are removed -> only item 3 is above -> rank 1
    assert rank_of_targets(scores, target, [np.array([1, 2])]).item() == 1
    # item 5 ties with the target but has a higher index, so it does not push the target down
    assert rank_of_targets(scores, torch.tensor([5]), [np.array([1, 2])]).item() == 2


def test_evaluate_scorer_end_to_end_by_hand() -> None:
    data = EvalSet(
        users=["a", "b"],
        items=[np.array([1]), np.array([2, 3])],
        types=[np.array([1]), np.array([1, 1])],
        targets=np.array([2, 1]),
    )
    fixed = torch.tensor([0.0, 5.0, 4.0, 3.0, 2.0])  # items 1..4 in that order of preference

    def scorer(items, types):
        return fixed.expand(len(items), -1)

    # user a: item 1 seen -> item 2 ranks first (rank 0); user b: items 2, 3 seen -> item 1 first (rank 0)
    out = evaluate_scorer(scorer, data, ks=[1])
    assert out["hr@1"] == 1.0 and out["ndcg@1"] == 1.0
    # without filtering: a's target 2 is behind 1 (rank 1); b's target 1 is first (rank 0)
    out = evaluate_scorer(scorer, data, ks=[1, 2], filter_seen=False)
    assert out["hr@1"] == 0.5 and out["mrr@2"] == pytest.approx((0.5 + 1.0) / 2)


def test_paired_difference_by_hand() -> None:
    # user a has two queries (+0.2 and 0.0: mean +0.1), user b one (-0.1): per-user diffs 0.1, -0.1
    d = paired_difference(np.array([0.7, 0.5, 0.4]), np.array([0.5, 0.5, 0.5]), ["a", "a", "b"])
    assert d["mean_diff"] == pytest.approx(0.1 / 3)
    assert d["users"] == 2 and d["se"] == pytest.approx(np.std([0.1, -0.1], ddof=1) / np.sqrt(2))
    assert d["relative"] == pytest.approx((0.1 / 3) / 0.5)
    lo, hi = d["relative_ci95"]
    assert lo == pytest.approx((0.1 / 3 - 1.96 * d["se"]) / 0.5) and hi == pytest.approx(
        (0.1 / 3 + 1.96 * d["se"]) / 0.5
    )


def test_reciprocal_ranks_have_no_cutoff() -> None:
    assert reciprocal_ranks(np.array([0, 1, 999])).tolist() == [1.0, 0.5, 0.001]


def test_target_ranks_batching_changes_calls_not_ranks() -> None:
    # A scorer whose scores depend on the history, and that records each call's padded shape.
    rng = np.random.default_rng(3)
    lengths = [1, 2, 3, 5, 8, 13, 21, 34, 55, 3, 1, 8]
    data = EvalSet(
        users=[str(u) for u in range(len(lengths))],
        items=[rng.integers(1, 30, n) for n in lengths],
        types=[np.ones(n, dtype=np.int64) for n in lengths],
        targets=rng.integers(1, 30, len(lengths)),
    )
    table = torch.from_numpy(rng.normal(size=(31, 31)).astype(np.float32))
    calls: list[tuple[int, int]] = []

    def scorer(items, types):
        calls.append((len(items), max(min(len(h), 20) for h in items)))
        return torch.stack([table[torch.from_numpy(h[-20:])].sum(0) for h in items])

    whole = target_ranks(scorer, data, batch_size=512, max_tokens=10**9)
    assert calls == [(12, 20)]
    calls.clear()
    budgeted = target_ranks(scorer, data, batch_size=4, max_tokens=24, max_len=20)
    np.testing.assert_array_equal(budgeted, whole)  # same ranks in the data's order
    # sorted by length (capped at max_len 20): 1 1 2 3 | 3 5 8 | 8 | 13 | 20 | 20 | 20 -- at most 4 rows
    # and 24 padded entries per call, a single history over the budget alone
    assert calls == [(4, 3), (3, 8), (1, 8), (1, 13), (1, 20), (1, 20), (1, 20)]

"""Features of merged candidates, on hand-made inputs whose values are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from freshrec.candidates.base import Proposal
from freshrec.ranking.candidates import PER_SOURCE, SOURCES, merge
from freshrec.ranking.features import DAY, FEATURES, ItemStats, compute
from freshrec.schema import UserSnapshot
from freshrec.state.trending import Trending


def col(x: np.ndarray, name: str) -> np.ndarray:
    return x[:, FEATURES.index(name)]


def test_merge_keeps_every_sources_score_and_rank() -> None:
    model = Proposal(np.array([3, 4]), np.array([2.5, 1.5]))
    cooc = Proposal(np.array([4, 5]), np.array([6.0, 2.0]))
    sknn = Proposal(np.array([5]), np.array([0.7]))
    trending = Proposal(np.array([3]), np.array([9.0]))
    cands = merge([model, cooc, sknn, trending])
    assert cands.items.tolist() == [3, 4, 5]
    assert cands.scores.tolist() == [[2.5, 0, 0, 9.0], [1.5, 6.0, 0, 0], [0, 2.0, 0.7, 0]]
    assert cands.ranks.tolist() == [[0, 100, 100, 0], [1, 0, 100, 100], [100, 1, 0, 100]]
    assert [cands.sources_of(c) for c in range(3)] == [
        ["model", "trending"],
        ["model", "co-occurrence"],
        ["co-occurrence", "session-knn"],
    ]
    assert len(SOURCES) == 4 and PER_SOURCE == 100


def test_features_of_a_known_moment() -> None:
    trending = Trending(3 * DAY, (DAY, 7 * DAY, 30 * DAY))
    trending.add([3, 3, 4], [0.0, 10 * DAY, 10 * DAY])  # item 3 first seen at day 0, item 4 at day 10
    stats = ItemStats.of(trending, 6)
    cands = merge(
        [
            Proposal(np.array([3, 4]), np.array([2.0, 1.0])),
            Proposal(np.array([4, 5]), np.array([3.0, 1.0])),
            Proposal.empty(),
            Proposal(np.array([3]), np.array([1.0])),
        ]
    )
    snap = UserSnapshot(
        items=np.array([1, 2]), types=np.array([1, 4]), ts=np.array([9 * DAY, 10 * DAY - 7200]), seen=np.array([1, 2])
    )
    x = compute(cands, snap, np.array([2.0, 1.0, np.nan]), np.array([True, True, False]), stats, now=10 * DAY)
    assert x.shape == (3, len(FEATURES)) and x.dtype == np.float32
    assert col(x, "model_score")[:2].tolist() == [2.0, 1.0] and math.isnan(col(x, "model_score")[2])
    assert col(x, "model_score_gap")[:2].tolist() == [0.0, -1.0]
    assert col(x, "model_rank").tolist() == [0, 1, PER_SOURCE]
    assert col(x, "cooc_share").tolist() == pytest.approx([0.0, 1.0, 1 / 3])
    assert col(x, "cooc_score").tolist() == pytest.approx([0.0, math.log1p(3.0), math.log1p(1.0)])
    assert col(x, "sknn_rank").tolist() == [PER_SOURCE] * 3
    assert col(x, "interactions").tolist() == pytest.approx([math.log1p(2), math.log1p(1), 0.0])
    assert col(x, "item_age_days").tolist()[:2] == pytest.approx([10.0, 0.0]) and math.isnan(col(x, "item_age_days")[2])
    # a day's half-life: item 3's day-0 event weighs 2^-10 of its day-10 one; the most popular item is 1.0
    assert col(x, "pop_day")[0] == pytest.approx(1.0) and col(x, "pop_day")[1] == pytest.approx(1 / (1 + 2**-10))
    assert col(x, "user_gap_hours").tolist() == pytest.approx([2.0] * 3)
    assert col(x, "last_type").tolist() == [4.0] * 3 and col(x, "history_len").tolist() == [2.0] * 3
    assert col(x, "learned").tolist() == [1.0, 1.0, 0.0] and col(x, "sources").tolist() == [2, 2, 1]
    assert np.isnan(col(x, "content_sim")).all()  # no content given

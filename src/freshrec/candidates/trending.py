"""Trending as a candidate source: the most popular available items lately (decayed counts), seen items left out."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from freshrec.candidates.base import Proposal
from freshrec.schema import UserSnapshot

#: () -> (catalogue indices best first, their scores): available items only.
Ranking = Callable[[], tuple[np.ndarray, np.ndarray]]


class TrendingSource:
    """Proposes the head of a trending ranking (:class:`~freshrec.state.trending.Trending`), per user minus the
    items in ``exclude``; the ranking callable decides how often it is recomputed.

    Example
    -------
    >>> source = TrendingSource(lambda: (np.array([4, 2, 9]), np.array([3.0, 2.0, 1.0])))
    >>> [p.items.tolist() for p in source.propose([None, None], 2, [np.array([]), np.array([4])])]
    [[4, 2], [2, 9]]
    """

    name = "trending"

    def __init__(self, ranking: Ranking) -> None:
        self.ranking = ranking

    def propose(
        self, snapshots: Sequence[UserSnapshot | None], k: int, exclude: Sequence[np.ndarray]
    ) -> list[Proposal]:
        order, scores = self.ranking()
        out = []
        for seen in exclude:
            keep = ~np.isin(order, seen) if len(seen) else np.ones(len(order), dtype=bool)
            items, values = order[keep][:k], scores[keep][:k]
            out.append(Proposal(items.astype(np.int64), values.astype(np.float64)))
        return out

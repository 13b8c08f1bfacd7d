"""Merging the candidates of several sources into one set, remembering what each source said of each item."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from freshrec.candidates.base import Proposal

#: The sources whose candidates are merged, in the order of the score and rank columns.
SOURCES = ("model", "co-occurrence", "session-knn", "trending")
#: Candidates each source proposes for one request.
PER_SOURCE = 100


@dataclass(frozen=True)
class CandidateSet:
    """One user's merged candidates: ``items`` [C] catalogue indices; per source (columns in :data:`SOURCES`
    order) the item's ``scores`` [C, S] (0 where the source did not propose it) and 0-based ``ranks`` [C, S]
    (:data:`PER_SOURCE` where it did not)."""

    items: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray

    def __len__(self) -> int:
        return len(self.items)

    def proposed(self) -> np.ndarray:
        """[C, S] bool: which sources proposed each item."""
        return self.ranks < PER_SOURCE

    def sources_of(self, c: int) -> list[str]:
        """The names of the sources that proposed candidate ``c``."""
        return [name for name, hit in zip(SOURCES, self.proposed()[c], strict=True) if hit]


def merge(proposals: Sequence[Proposal]) -> CandidateSet:
    """The union of one user's proposals, one per source in :data:`SOURCES` order, in first-seen order.

    >>> a = Proposal(np.array([5, 7]), np.array([2.0, 1.0]))
    >>> b = Proposal(np.array([7, 9]), np.array([4.0, 3.0]))
    >>> c = merge([a, b, Proposal.empty(), Proposal.empty()])
    >>> c.items.tolist(), c.ranks[:, :2].tolist(), c.sources_of(1)
    ([5, 7, 9], [[0, 100], [1, 0], [100, 1]], ['model', 'co-occurrence'])
    """
    if len(proposals) != len(SOURCES):
        raise ValueError(f"{len(proposals)} proposals for {len(SOURCES)} sources")
    items = np.concatenate([p.items for p in proposals]) if proposals else np.zeros(0, dtype=np.int64)
    items = np.asarray(list(dict.fromkeys(items.tolist())), dtype=np.int64)
    position = {int(i): c for c, i in enumerate(items)}
    scores = np.zeros((len(items), len(SOURCES)))
    ranks = np.full((len(items), len(SOURCES)), PER_SOURCE, dtype=np.int64)
    for s, p in enumerate(proposals):
        for rank, (item, score) in enumerate(zip(p.items.tolist(), p.scores.tolist(), strict=True)):
            c = position[item]
            scores[c, s], ranks[c, s] = score, rank
    return CandidateSet(items, scores, ranks)

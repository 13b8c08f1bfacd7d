"""CandidateSource: proposes items for users from live state, each with a score of its own.

Sources see the user's snapshot (:class:`~freshrec.schema.UserSnapshot`), never the model: the transformer is
one source among several, and the ranker that merges them reads each source's score as a feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from freshrec.schema import UserSnapshot


@dataclass(frozen=True)
class Proposal:
    """One source's candidates for one user: catalogue indices [C] and their scores [C], best first."""

    items: np.ndarray
    scores: np.ndarray

    @staticmethod
    def empty() -> Proposal:
        return Proposal(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))

    def __len__(self) -> int:
        return len(self.items)


@runtime_checkable
class CandidateSource(Protocol):
    """Guarantees: a proposal holds at most ``k`` distinct catalogue indices, best first, none of them in the
    user's ``exclude`` set and none 0 (padding); it reflects every event applied to the state it reads."""

    name: str

    def propose(
        self, snapshots: Sequence[UserSnapshot | None], k: int, exclude: Sequence[np.ndarray]
    ) -> list[Proposal]:
        """Per user (``None``: no state yet), up to ``k`` items not in ``exclude[b]``."""
        ...


def top_k(scores: dict[int, float], k: int, exclude: np.ndarray) -> Proposal:
    """The ``k`` best-scored items of a score table, leaving out ``exclude``; ties by catalogue index.

    >>> top_k({3: 1.0, 5: 2.0, 7: 1.0, 9: 5.0}, 3, exclude=np.array([9])).items.tolist()
    [5, 3, 7]
    """
    if not scores:
        return Proposal.empty()
    items = np.fromiter(scores.keys(), dtype=np.int64, count=len(scores))
    values = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
    keep = ~np.isin(items, exclude) & (items > 0)
    items, values = items[keep], values[keep]
    order = np.lexsort((items, -values))[:k]
    return Proposal(items[order], values[order])

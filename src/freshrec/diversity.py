"""Diversity re-ranking: maximal marginal relevance (MMR) over item embeddings, and how diverse a list is.

A list is built greedily from a pool of the best-scored candidates: each next item maximises
``(1 - diversity) * relevance - diversity * (its highest cosine similarity to an item already chosen)``, with
relevance the model's score scaled to [0, 1] within the pool. ``diversity = 0`` keeps the model's order;
``1`` only avoids similar items. The first item is always the best-scored one.

>>> import numpy as np
>>> unit = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0]])   # items 0 and 1 are near duplicates
>>> mmr(np.array([3.0, 2.9, 2.0]), unit, 2, 0.0).tolist(), mmr(np.array([3.0, 2.9, 2.0]), unit, 2, 0.5).tolist()
([0, 1], [0, 2])
>>> round(intra_list_diversity(unit[[0, 1]]), 3), round(intra_list_diversity(unit[[0, 2]]), 3)
(0.01, 1.0)
"""

from __future__ import annotations

import numpy as np

#: Candidates MMR chooses from, per slot of the list (a list of k is chosen among the best 4k).
POOL_PER_SLOT = 4


def mmr(scores: np.ndarray, unit: np.ndarray, k: int, diversity: float) -> np.ndarray:
    """Positions of the ``k`` candidates MMR picks, in list order. ``scores``: [M] model scores, best first;
    ``unit``: [M, D] the candidates' unit-length embeddings."""
    n = len(scores)
    k = min(k, n)
    if diversity <= 0 or k <= 1:
        return np.arange(k)
    spread = float(scores.max() - scores.min())
    relevance = (scores - scores.min()) / spread if spread > 0 else np.ones(n)
    similarity = unit @ unit.T
    chosen = [int(np.argmax(scores))]
    closest = similarity[chosen[0]].astype(np.float64).copy()
    free = np.ones(n, dtype=bool)
    free[chosen[0]] = False
    for _ in range(1, k):
        gain = (1.0 - diversity) * relevance - diversity * closest
        gain[~free] = -np.inf
        j = int(np.argmax(gain))
        chosen.append(j)
        free[j] = False
        np.maximum(closest, similarity[j], out=closest)
    return np.asarray(chosen, dtype=np.int64)


def intra_list_diversity(unit: np.ndarray) -> float:
    """Mean cosine distance (1 - similarity) between the items of a list, from their unit embeddings."""
    n = len(unit)
    if n < 2:
        return 0.0
    similarity = unit @ unit.T
    return float(1.0 - (similarity.sum() - np.trace(similarity)) / (n * (n - 1)))

"""Exact re-scoring: a compressed scan proposes candidates, the full-precision table orders them.

A scan over a bf16 or int8 copy of the item table reads 2-4x fewer bytes than one over float32, but its
scores are rounded, so near-tied items can swap and the returned scores are not the model's. Taking the
best :data:`RESCORE_PER_SLOT` x k candidates of the scan and scoring only those against the float32 table
(the model's own weights, shared, not copied) gives back the model's scores and order for everything the
scan ranked that high.
"""

from __future__ import annotations

import numpy as np
import torch

#: Candidates a compressed scan hands to exact re-scoring, per result slot (k = 10 re-scores 40 rows).
RESCORE_PER_SLOT = 4


def candidates(k: int, rows: int) -> int:
    """How many candidates to take from a compressed scan for a top ``k`` over ``rows`` rows."""
    return min(rows, max(k, RESCORE_PER_SLOT * k))


def rescore(
    table: torch.Tensor, queries: torch.Tensor, ids: torch.Tensor, valid: torch.Tensor, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each query's candidates by their exact inner product with ``table``.

    Parameters
    ----------
    table: [N + 1, D] float32, the full-precision rows.
    queries: [B, D].
    ids: [B, C] int64 candidate rows; entries where ``valid`` is False stand for nothing.
    valid: [B, C] bool.
    k: results per query; at most C.

    Returns
    -------
    ``ids``, ``scores`` as numpy [B, k], best first; ``-inf`` scores mark entries that stand for nothing.

    Example
    -------
    >>> table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.6]])
    >>> ids, scores = rescore(table, torch.tensor([[1.0, 1.0]]), torch.tensor([[1, 2, 3]]),
    ...                       torch.tensor([[True, False, True]]), k=2)
    >>> ids.tolist(), scores.round(2).tolist()
    ([[3, 1]], [[1.2, 1.0]])
    """
    with torch.inference_mode():
        safe = torch.where(valid, ids, torch.zeros_like(ids))
        exact = torch.bmm(table[safe], queries.float().unsqueeze(2)).squeeze(2)  # [B, C]
        exact.masked_fill_(~valid, float("-inf"))
        top = torch.topk(exact, k, dim=1)
        return safe.gather(1, top.indices).numpy(), top.values.numpy()

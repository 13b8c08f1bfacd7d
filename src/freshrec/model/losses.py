"""Training losses for next-item prediction.

Full-softmax cross-entropy over the whole catalogue is the default: Klenitskiy & Vasilev (RecSys 2023)
show it adds 0.05-0.07 NDCG@10 over SASRec's original one-negative BCE. Only positions with a target are
scored (the caller gathers them), so padding never reaches the [M, N] logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NextItemLoss(nn.Module):
    """Base: ``forward(hidden [M, D], item_table [N + 1, D], targets [M]) -> scalar``; row 0 is padding."""

    def forward(self, hidden: torch.Tensor, item_table: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class FullSoftmaxCE(NextItemLoss):
    """Cross-entropy against every item; the padding row is never a candidate.

    Example
    -------
    >>> import torch
    >>> table = torch.eye(4)            # padding + 3 items, D = 4
    >>> hidden = 10 * table[[2]]        # points at item 2
    >>> round(FullSoftmaxCE()(hidden, table, torch.tensor([2])).item(), 4)
    0.0001
    """

    def forward(self, hidden: torch.Tensor, item_table: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = hidden @ item_table[1:].T  # [M, N]
        return F.cross_entropy(logits.float(), targets - 1)


LOSSES: dict[str, type[NextItemLoss]] = {"full_softmax": FullSoftmaxCE}

"""Exact top-k by one matrix product: the right choice up to a few hundred thousand items on CPU."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from freshrec.index.rescore import candidates, rescore


class ExactIndex:
    """Scores every row. ``vectors``: [N + 1, D] float32 with row 0 the padding row; read in place, not
    copied (serving hands it the model's own item table).

    With ``dtype=torch.bfloat16`` the scan reads a bf16 copy (half the bytes of the table) and the best
    :data:`~freshrec.index.rescore.RESCORE_PER_SLOT` x k rows are re-scored exactly from ``vectors``, so
    the scores are float32 inner products and the order is the exact one unless an item the bf16 scan
    ranked below that cut belonged in the top k.

    Example
    -------
    >>> import torch, numpy as np
    >>> index = ExactIndex(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.7, 0.7]]))
    >>> ids, scores = index.topk(torch.tensor([[1.0, 0.2]]), k=2, exclude=[np.array([1])])
    >>> ids.tolist()
    [[3, 2]]
    """

    def __init__(self, vectors: torch.Tensor, dtype: torch.dtype = torch.float32) -> None:
        # bf16 halves the bytes read per query (the cost at 100K+ rows is memory, not arithmetic) and runs
        # on the CPU's bf16 units; float32 scans the shared table itself.
        self.dtype = dtype
        self.table = vectors.detach().float()  # no copy when it is float32 already
        self.scan = self.table if dtype == torch.float32 else self.table.to(dtype).contiguous()

    def topk(
        self,
        queries: torch.Tensor,
        k: int,
        exclude: Sequence[np.ndarray] | None = None,
        allowed: torch.Tensor | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            scores = (queries.to(self.dtype) @ self.scan.T).float()  # [B, N + 1]
            scores[:, 0] = float("-inf")
            if allowed is not None:
                scores.masked_fill_(~allowed[: scores.shape[1]], float("-inf"))
            if exclude is not None:
                for b, rows in enumerate(exclude):
                    if len(rows):
                        scores[b, torch.from_numpy(np.asarray(rows, dtype=np.int64))] = float("-inf")
            k = min(k, scores.shape[1])
            if self.scan is self.table:
                top = torch.topk(scores, k, dim=1)
                return top.indices.numpy(), top.values.numpy()
            top = torch.topk(scores, candidates(k, scores.shape[1]), dim=1)
            return rescore(self.table, queries, top.indices, torch.isfinite(top.values), k)

"""Index: top-k retrieval of item rows for query vectors, with per-query and global exclusions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Index(Protocol):
    """Rows are model item rows (0 = padding, never returned). ``topk`` returns ``ids``/``scores``
    [B, K'] with K' = min(k, rows); entries whose score is ``-inf`` were excluded and must be dropped.
    Exact and approximate backends return the same answer up to ANN recall."""

    def topk(
        self,
        queries: torch.Tensor,
        k: int,
        exclude: Sequence[np.ndarray] | None = None,
        allowed: torch.Tensor | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``queries``: [B, D]; ``exclude[b]``: rows hidden for query b; ``allowed``: [N + 1] bool."""
        ...

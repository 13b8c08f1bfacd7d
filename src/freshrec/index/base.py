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


def build_index(
    vectors: torch.Tensor, kind: str = "auto", auto_threshold: int = 200_000, precision: str = "fp32"
) -> Index:
    """The index a serving model uses: ``exact``, ``faiss-flat``, ``faiss-hnsw``, or ``auto`` (exact up to
    ``auto_threshold`` rows, HNSW above). ``precision`` ("fp32", "bf16" or "auto": bf16 where the CPU
    has native bf16) applies to exact scoring."""
    if kind == "auto":
        kind = "exact" if vectors.shape[0] <= auto_threshold else "faiss-hnsw"
    if kind == "exact":
        from freshrec.index.exact import ExactIndex
        from freshrec.model.device import amp_dtype

        dtype = amp_dtype(vectors.device, precision) if precision != "fp32" else None
        return ExactIndex(vectors, dtype or torch.float32)
    if kind in ("faiss-flat", "faiss-hnsw"):
        from freshrec.index.faiss import FaissIndex

        return FaissIndex(vectors, kind=kind.removeprefix("faiss-"))
    raise ValueError(f"unknown index kind {kind!r}; use exact, faiss-flat, faiss-hnsw or auto")

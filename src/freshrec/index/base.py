"""Index: top-k retrieval of item rows for query vectors, with per-query and global exclusions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from freshrec.device import amp_dtype


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


#: With ``kind="auto"``, catalogues with more rows than this use faiss HNSW instead of exact scoring.
AUTO_HNSW_ROWS = 200_000


def build_index(vectors: torch.Tensor, kind: str = "auto") -> Index:
    """The index a serving model uses over ``vectors`` ([N + 1, D] float32, read in place): ``exact``,
    ``faiss-flat``, ``faiss-hnsw``, or ``auto`` (exact up to :data:`AUTO_HNSW_ROWS` rows, HNSW above). The
    exact scan runs in bf16 where the CPU has native bf16 (about 3x faster over 100K items), else in
    float32; the bf16 scan and HNSW's 8-bit codes hand their best candidates to exact re-scoring
    (:mod:`freshrec.index.rescore`)."""
    if kind == "auto":
        kind = "exact" if vectors.shape[0] <= AUTO_HNSW_ROWS else "faiss-hnsw"
    if kind == "exact":
        from freshrec.index.exact import ExactIndex

        return ExactIndex(vectors, amp_dtype(vectors.device) or torch.float32)
    if kind in ("faiss-flat", "faiss-hnsw"):
        from freshrec.index.faiss import FaissIndex

        return FaissIndex(vectors, kind=kind.removeprefix("faiss-"))
    raise ValueError(f"unknown index kind {kind!r}; use exact, faiss-flat, faiss-hnsw or auto")

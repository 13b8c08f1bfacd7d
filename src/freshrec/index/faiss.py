"""faiss-backed index for large catalogues: HNSW (approximate) or flat (exact, faiss BLAS).

Availability is applied with a bitmap selector inside the search; a user's seen items by fetching
``k + len(seen)`` and dropping them, so both filters hold exactly and only ANN recall differs from
:class:`~freshrec.index.exact.ExactIndex`.

HNSW stores its vectors as 8-bit scalar-quantised codes (a quarter of float32) and re-scores the best
:data:`~freshrec.index.rescore.RESCORE_PER_SLOT` x k it finds exactly from the float32 table it was built
from (read in place, not copied): the graph walk is approximate anyway, and the answer keeps the model's
scores. Flat keeps its own float32 copy and needs no re-scoring.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from freshrec.index.rescore import RESCORE_PER_SLOT, rescore

try:
    import faiss
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the faiss index needs faiss-cpu: pip install 'freshrec[faiss]'") from exc


class FaissIndex:
    """Inner-product search over ``vectors`` [N + 1, D] float32 (row 0 is padding and never returned).

    Example
    -------
    >>> import torch, numpy as np
    >>> index = FaissIndex(torch.eye(4)[:, :3].contiguous(), kind="flat")
    >>> ids, _ = index.topk(torch.tensor([[0.0, 1.0, 0.5]]), k=2)
    >>> ids.tolist()
    [[1, 2]]
    """

    def __init__(
        self,
        vectors: torch.Tensor,
        kind: str = "hnsw",
        hnsw_m: int = 32,
        ef_search: int = 128,
        ef_construction: int = 80,
    ) -> None:
        self.table = vectors.detach().float()  # no copy when it is float32 already
        data = np.ascontiguousarray(self.table.numpy())
        self.rows, dim = data.shape
        self.kind = kind
        if kind == "hnsw":
            self.index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = ef_construction
            self.index.train(data)  # per-dimension ranges of the 8-bit codes
            self.ef_search = ef_search
        elif kind == "flat":
            self.index = faiss.IndexFlatIP(dim)
        else:
            raise ValueError(f"faiss index kind must be 'hnsw' or 'flat', got {kind!r}")
        self.index.add(data)
        self._selector_key: torch.Tensor | None = None
        self._selector: tuple[np.ndarray, faiss.IDSelectorBitmap] | None = None

    def _params(self, allowed: torch.Tensor | None) -> faiss.SearchParameters:
        # Serving passes the same cached mask object until the catalogue changes, so the bitmap is
        # built once per catalogue version, not per request.
        if self._selector is None or self._selector_key is not allowed:
            mask = np.ones(self.rows, dtype=bool) if allowed is None else allowed[: self.rows].numpy().copy()
            mask[0] = False
            bits = np.packbits(mask, bitorder="little")
            # keep ``bits`` alive as long as the selector that points into it
            self._selector = (bits, faiss.IDSelectorBitmap(self.rows, faiss.swig_ptr(bits)))
            self._selector_key = allowed
        selector = self._selector[1]
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=selector, efSearch=self.ef_search)
        return faiss.SearchParameters(sel=selector)

    def topk(
        self,
        queries: torch.Tensor,
        k: int,
        exclude: Sequence[np.ndarray] | None = None,
        allowed: torch.Tensor | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries.detach().float().numpy())
        extra = max((len(e) for e in exclude), default=0) if exclude is not None else 0
        if self.kind == "hnsw":
            return self._rescored(q, k, extra, exclude, allowed)
        fetch = min(k + extra, self.rows)
        scores, ids = self.index.search(q, fetch, params=self._params(allowed))
        out_ids = np.zeros((len(q), min(k, self.rows)), dtype=np.int64)
        out_scores = np.full(out_ids.shape, -np.inf, dtype=np.float32)
        for b in range(len(q)):
            keep = ids[b] > 0
            if exclude is not None and len(exclude[b]):
                keep &= ~np.isin(ids[b], exclude[b])
            row_ids, row_scores = ids[b][keep][:k], scores[b][keep][:k]
            out_ids[b, : len(row_ids)] = row_ids
            out_scores[b, : len(row_scores)] = row_scores
        return out_ids, out_scores

    def _rescored(
        self, q: np.ndarray, k: int, extra: int, exclude: Sequence[np.ndarray] | None, allowed: torch.Tensor | None
    ) -> tuple[np.ndarray, np.ndarray]:
        fetch = min(RESCORE_PER_SLOT * k + extra, self.rows)
        _, ids = self.index.search(q, fetch, params=self._params(allowed))
        valid = ids > 0  # faiss pads with -1 when fewer rows pass the selector
        if exclude is not None:
            for b, rows in enumerate(exclude):
                if len(rows):
                    valid[b] &= ~np.isin(ids[b], rows)
        queries, candidates = torch.from_numpy(q), torch.from_numpy(ids)
        return rescore(self.table, queries, candidates, torch.from_numpy(valid), min(k, self.rows))

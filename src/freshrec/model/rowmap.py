"""RowMap: catalogue index -> model row, for a model whose rows follow its own id map.

A version's item table is ordered by its ``item_ids`` (training order, then growth order); the catalogue
numbers items in the order they reached it. Translating through external ids keeps every version usable
against any catalogue that knows its items.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from freshrec.catalog.base import Catalog


class RowMap:
    """``rows(catalog_idx)`` -> model rows (0 where the model has no row); ``catalog_of_row`` the inverse.

    Example
    -------
    >>> m = RowMap(np.array([3, 1]))          # row 1 is catalogue item 3, row 2 is item 1
    >>> m.rows(np.array([1, 2, 3, 9])).tolist(), m.catalog_of_row.tolist()
    ([2, 0, 1, 0], [0, 3, 1])
    """

    def __init__(self, catalog_idx_of_rows: np.ndarray) -> None:
        cat_idx = np.asarray(catalog_idx_of_rows, dtype=np.int64)
        self.catalog_of_row = np.concatenate([[0], cat_idx])  # [Nm + 1]
        self._row_of = np.zeros(int(cat_idx.max(initial=0)) + 1, dtype=np.int64)
        self._row_of[cat_idx] = np.arange(1, len(cat_idx) + 1)

    @classmethod
    def from_item_ids(cls, catalog: Catalog, item_ids: Sequence[str]) -> RowMap:
        """Map a version's id list onto a catalogue (creating bare catalogue entries for unknown ids)."""
        return cls(np.asarray(catalog.internal_ids(list(item_ids), create=True), dtype=np.int64))

    def __len__(self) -> int:
        return len(self.catalog_of_row) - 1

    def rows(self, catalog_idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(catalog_idx, dtype=np.int64)
        inside = idx < len(self._row_of)
        out = np.zeros(idx.shape, dtype=np.int64)
        out[inside] = self._row_of[idx[inside]]
        return out

    def extended(self, new_catalog_idx: Sequence[int]) -> RowMap:
        """The map after rows for ``new_catalog_idx`` were appended to the table."""
        return RowMap(np.concatenate([self.catalog_of_row[1:], np.asarray(new_catalog_idx, dtype=np.int64)]))

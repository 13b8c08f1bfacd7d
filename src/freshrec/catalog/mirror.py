"""The in-memory mirror every catalogue backend keeps for the hot path: ids, titles, categories and
availability by index, answered without a query."""

from __future__ import annotations

import numpy as np


class CatalogMirror:
    """Index-ordered copies of the fields serving reads per request; backends append and update them.

    >>> m = CatalogMirror()
    >>> m._append("a", "Apple", ["fruit"], True), m._append("b", None, [], False)
    (1, 2)
    >>> len(m), m.external_id(2), m.title(1), m.available_mask().tolist()
    (2, 'b', 'Apple', [False, True, False])
    """

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        self._titles: list[str | None] = []
        self._categories: list[list[str]] = []  # shared lists: see _shared
        self._distinct: dict[tuple[str, ...], list[str]] = {}
        self._available = np.zeros(1, dtype=bool)

    def _shared(self, categories: list[str]) -> list[str]:
        """The one list object kept for this category list. Items share a handful of category lists (or
        none), and a list per item costs ~70 bytes before its strings: 70 MB at 1M items. The lists
        :meth:`categories` returns are read-only for that reason."""
        key = tuple(categories)
        shared = self._distinct.get(key)
        if shared is None:
            shared = self._distinct[key] = list(key)
        return shared

    def _append(self, item_id: str, title: str | None, categories: list[str], available: bool) -> int:
        """Mirror the next index; returns it."""
        self._ids.append(item_id)
        idx = len(self._ids)
        self._index[item_id] = idx
        self._titles.append(title)
        self._categories.append(self._shared(categories))
        if idx + 1 > self._available.shape[0]:
            grown = np.zeros(max(idx + 1, 2 * self._available.shape[0]), dtype=bool)
            grown[: self._available.shape[0]] = self._available
            self._available = grown
        self._available[idx] = available
        return idx

    def _set(self, idx: int, title: str | None, categories: list[str], available: bool) -> None:
        self._titles[idx - 1] = title
        self._categories[idx - 1] = self._shared(categories)
        self._available[idx] = available

    def __len__(self) -> int:
        return len(self._ids)

    def external_ids(self) -> list[str]:
        return list(self._ids)

    def external_id(self, idx: int) -> str:
        return self._ids[idx - 1]

    def title(self, idx: int) -> str | None:
        return self._titles[idx - 1]

    def titles(self) -> list[str | None]:
        return list(self._titles)

    def categories(self, idx: int) -> list[str]:
        """The item's categories (shared with other items that have the same ones: do not change it)."""
        return self._categories[idx - 1]

    def available_mask(self) -> np.ndarray:
        mask = self._available[: len(self._ids) + 1].copy()
        mask[0] = False
        return mask

"""Catalog: items, their content, availability, and the map from external item ids to dense indices.

Item indices start at 1 (0 is the model's padding row) and only grow: an index, once given to an item,
names that item forever, so model versions trained at different times agree on what row ``i`` means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from freshrec.schema import CatalogItem, ItemIn
from freshrec.storage_url import connect_redis, split_url, sqlite_path


@runtime_checkable
class Catalog(Protocol):
    """Guarantees every backend keeps: indices are dense from 1, stable and never reused; ``upsert``
    is durable on return; fields an upsert leaves out keep their stored value."""

    #: Bumped on every change, so callers can cache arrays derived from the catalogue.
    version: int

    def __len__(self) -> int:
        """Number of items N (indices run 1..N)."""
        ...

    def upsert(self, items: Sequence[ItemIn]) -> tuple[list[int], int]:
        """Create or update items; returns their indices and how many were new."""
        ...

    def get(self, ids: Sequence[str]) -> list[CatalogItem | None]:
        """Items by external id (``None`` for unknown ids)."""
        ...

    def get_by_idx(self, idxs: Sequence[int]) -> list[CatalogItem]: ...

    def updated_since(self, ts: float) -> list[int]:
        """Indices of items created or changed after unix time ``ts`` (content caches use it)."""
        ...

    def internal_id(self, item_id: str, create: bool = True) -> int | None:
        """Index of an external id, creating a bare item when ``create`` and unknown."""
        ...

    def internal_ids(self, item_ids: Sequence[str], create: bool = True) -> list[int]:
        """Batch form of :meth:`internal_id`; unknown ids map to 0 when not created."""
        ...

    def external_ids(self) -> list[str]:
        """All external ids; position ``i`` holds the id of index ``i + 1``."""
        ...

    def external_id(self, idx: int) -> str:
        """External id of an index."""
        ...

    def title(self, idx: int) -> str | None: ...

    def categories(self, idx: int) -> list[str]: ...

    def available_mask(self) -> np.ndarray:
        """[N + 1] bool, True where the item may be recommended (index 0 is always False)."""
        ...

    def titles(self) -> list[str | None]:
        """Titles; position ``i`` holds the title of index ``i + 1``."""
        ...

    def refresh(self) -> bool:
        """Pick up items other processes added or changed since the last call; True when anything did."""
        ...

    def close(self) -> None: ...


def open_catalog(url: str, *, synchronous: str = "FULL") -> Catalog:
    """Open the catalogue a URL names. Schemes: ``sqlite:///<path>`` (embedded, or shared by the processes of
    one host) and ``redis://HOST:PORT/DB`` (shared by workers on any host)."""
    scheme, _ = split_url(url)
    if scheme == "sqlite":
        from freshrec.catalog.sqlite import SQLiteCatalog

        return SQLiteCatalog(sqlite_path(url), synchronous=synchronous)
    if scheme in ("redis", "rediss"):
        from freshrec.catalog.redis import RedisCatalog

        return RedisCatalog(connect_redis(url))
    raise ValueError(f"unknown catalog URL scheme {scheme!r} in {url!r}; supported: sqlite, redis")

"""SQLite catalogue: items and the id map in one file, mirrored in memory for the hot path.

The in-memory mirror (ids, titles, categories, availability) answers every serving lookup without a
query. New ids are claimed inside a write transaction after reading the rows other processes added, so
several processes sharing the file agree on every index and the indices stay dense.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from freshrec.catalog.mirror import CatalogMirror
from freshrec.schema import CatalogItem, ItemIn
from freshrec.storage_url import connect_sqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    idx INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT UNIQUE NOT NULL,
    title TEXT,
    text TEXT,
    categories TEXT NOT NULL DEFAULT '[]',
    attributes TEXT NOT NULL DEFAULT '{}',
    available INTEGER NOT NULL DEFAULT 1,
    updated_at REAL
);
"""
_CONTENT_FIELDS = ("title", "text", "categories", "attributes", "available")


class SQLiteCatalog(CatalogMirror):
    """Items and id map in SQLite. See :class:`freshrec.catalog.base.Catalog`.

    Example
    -------
    >>> import tempfile, pathlib
    >>> from freshrec.schema import ItemIn
    >>> cat = SQLiteCatalog(pathlib.Path(tempfile.mkdtemp()) / "catalog.db")
    >>> cat.upsert([ItemIn(item_id="a", title="Apple"), ItemIn(item_id="b")])
    ([1, 2], 2)
    >>> cat.internal_ids(["b", "c"]), len(cat)
    ([2, 3], 3)
    >>> cat.close()
    """

    def __init__(self, path: Path | str, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect_sqlite(self.path, synchronous)
        self._conn.executescript(_SCHEMA)
        self._lock = threading.RLock()
        CatalogMirror.__init__(self)
        #: Bumped on every change, so callers can cache derived arrays (e.g. the availability mask).
        self.version = 0
        self._data_version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        self._synced_at = time.time()
        self._load_after(0)

    # ---- in-memory mirror ------------------------------------------------------------------------

    def _load_after(self, idx: int) -> None:
        # Rows are streamed, not fetched all at once: 1M row tuples freed after the mirror's strings were
        # allocated among them would leave the allocator's arenas half empty (~200 MB more resident).
        rows = self._conn.execute(
            "SELECT idx, item_id, title, categories, available FROM items WHERE idx > ? ORDER BY idx", (idx,)
        )
        before = len(self._ids)
        for row_idx, item_id, title, categories, available in rows:
            if row_idx != len(self._ids) + 1:
                raise RuntimeError(f"catalog {self.path} has a gap at index {len(self._ids) + 1}")
            self._append(item_id, title, json.loads(categories), bool(available))
        if len(self._ids) > before:
            self.version += 1

    def _claim(self, cur: sqlite3.Cursor, item_ids: Sequence[str]) -> None:
        """Create rows for ids not yet stored (inside the caller's transaction) and mirror them."""
        # The caller holds the write lock, so after catching up with rows other processes added, the next
        # free index is known and nobody can take it. Indices are given explicitly: AUTOINCREMENT with
        # INSERT OR IGNORE burns a number on every ignored row, which would leave gaps in the dense map.
        self._load_after(len(self._ids))
        new = list(dict.fromkeys(i for i in item_ids if i not in self._index))
        if not new:
            return
        start = len(self._ids) + 1
        now = time.time()
        cur.executemany(
            "INSERT INTO items (idx, item_id, updated_at) VALUES (?, ?, ?)",
            [(start + k, i, now) for k, i in enumerate(new)],
        )
        self._load_after(len(self._ids))

    # ---- Catalog protocol ------------------------------------------------------------------------

    def internal_id(self, item_id: str, create: bool = True) -> int | None:
        idx = self.internal_ids([item_id], create=create)[0]
        return idx or None

    def internal_ids(self, item_ids: Sequence[str], create: bool = True) -> list[int]:
        index = self._index
        if not create and any(i not in index for i in item_ids):
            self.refresh()  # another process may have added it
            index = self._index
        if create and any(i not in index for i in item_ids):
            with self._lock:
                cur = self._conn.cursor()
                cur.execute("BEGIN IMMEDIATE")
                try:
                    self._claim(cur, item_ids)
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    self._reload()
                    raise
        return [index.get(i, 0) for i in item_ids]

    def upsert(self, items: Sequence[ItemIn]) -> tuple[list[int], int]:
        now = time.time()
        with self._lock:
            before = len(self._ids)
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                self._load_after(len(self._ids))  # see rows other processes added
                before = len(self._ids)
                self._claim(cur, [it.item_id for it in items])
                for it in items:
                    given = it.model_fields_set & set(_CONTENT_FIELDS)
                    if not given:
                        continue
                    values = {
                        "title": it.title,
                        "text": it.text,
                        "categories": json.dumps(it.categories),
                        "attributes": json.dumps(it.attributes),
                        "available": int(it.available),
                    }
                    cols = sorted(given)
                    sets = ", ".join(f"{c} = ?" for c in cols)
                    cur.execute(
                        f"UPDATE items SET {sets}, updated_at = ? WHERE item_id = ?",
                        [values[c] for c in cols] + [now, it.item_id],
                    )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                self._reload()
                raise
            for it in items:
                idx = self._index[it.item_id]
                if "title" in it.model_fields_set:
                    self._titles[idx - 1] = it.title
                if "categories" in it.model_fields_set:
                    self._categories[idx - 1] = self._shared(list(it.categories))
                if "available" in it.model_fields_set:
                    self._available[idx] = it.available
            self.version += 1
            return [self._index[it.item_id] for it in items], len(self._ids) - before

    def refresh(self) -> bool:
        # PRAGMA data_version changes only when another connection (another process) committed: the check
        # costs microseconds, so every request can afford it.
        with self._lock:
            data_version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if data_version == self._data_version:
                return False
            self._data_version = data_version
            since, self._synced_at = self._synced_at, time.time()
            known = len(self._ids)
            self._load_after(known)
            changed = self._conn.execute(
                # a second's margin: a writer stamps updated_at just before its commit becomes visible
                "SELECT idx, title, categories, available FROM items WHERE updated_at >= ? AND idx <= ?",
                (since - 1.0, known),
            ).fetchall()
            for idx, title, categories, available in changed:
                self._set(idx, title, json.loads(categories), bool(available))
            self.version += 1
            return True

    def _reload(self) -> None:
        version = self.version
        CatalogMirror.__init__(self)
        self._load_after(0)
        self.version = version + 1

    def get(self, ids: Sequence[str]) -> list[CatalogItem | None]:
        idxs = [self._index.get(i, 0) for i in ids]
        found = {it.item_idx: it for it in self.get_by_idx([i for i in idxs if i])}
        return [found.get(i) if i else None for i in idxs]

    def get_by_idx(self, idxs: Sequence[int]) -> list[CatalogItem]:
        if not idxs:
            return []
        out: dict[int, CatalogItem] = {}
        uniq = list(dict.fromkeys(int(i) for i in idxs))
        with self._lock:
            for start in range(0, len(uniq), 500):
                chunk = uniq[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in self._conn.execute(
                    "SELECT idx, item_id, title, text, categories, attributes, available FROM items"
                    f" WHERE idx IN ({marks})",
                    chunk,
                ):
                    idx, item_id, title, text, cats, attrs, available = row
                    out[idx] = CatalogItem(
                        idx, item_id, title, text, json.loads(cats), json.loads(attrs), bool(available)
                    )
        missing = [i for i in uniq if i not in out]
        if missing:
            raise KeyError(f"unknown item indices: {missing[:10]}")
        return [out[int(i)] for i in idxs]

    def updated_since(self, ts: float) -> list[int]:
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT idx FROM items WHERE updated_at > ?", (ts,))]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

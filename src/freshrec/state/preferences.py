"""Onboarding preferences: the categories a new user picked, kept durably until they are forgotten.

A user with no usable history gets trending items from their chosen categories instead of the global
trending list; after their first event the transformer takes over. Embedded: SQLite (WAL, synchronous FULL)
like the event log, mirrored in memory for the hot path. Scaled out: a Redis hash every worker reads.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from freshrec.storage_url import connect_sqlite


class PreferenceStore:
    """user_id -> chosen categories.

    Example
    -------
    >>> import tempfile, pathlib
    >>> store = PreferenceStore(pathlib.Path(tempfile.mkdtemp()) / "preferences.db")
    >>> store.set("u1", ["camping", "running"])
    >>> store.get("u1"), store.get("u2")
    (['camping', 'running'], None)
    >>> store.delete("u1"), store.get("u1")
    (True, None)
    """

    def __init__(self, path: Path | str, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect_sqlite(self.path, synchronous)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS preferences (user_id TEXT PRIMARY KEY, categories TEXT NOT NULL, ts REAL)"
        )
        self._lock = threading.Lock()
        self._prefs = {u: json.loads(c) for u, c in self._conn.execute("SELECT user_id, categories FROM preferences")}

    def set(self, user_id: str, categories: Sequence[str]) -> None:
        cats = list(dict.fromkeys(categories))
        with self._lock:
            self._conn.execute(
                "INSERT INTO preferences (user_id, categories, ts) VALUES (?, ?, ?) "
                "ON CONFLICT(user_id) DO UPDATE SET categories = excluded.categories, ts = excluded.ts",
                (user_id, json.dumps(cats), time.time()),
            )
            self._prefs[user_id] = cats

    def get(self, user_id: str) -> list[str] | None:
        return self._prefs.get(user_id)

    def delete(self, user_id: str) -> bool:
        with self._lock:
            if self._conn.execute("DELETE FROM preferences WHERE user_id = ?", (user_id,)).rowcount:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # no copy left in the write-ahead log
            return self._prefs.pop(user_id, None) is not None

    def close(self) -> None:
        self._conn.close()


class RedisPreferenceStore:
    """The same methods as :class:`PreferenceStore`, in the Redis hash ``<prefix>prefs`` (user -> JSON list).

    >>> store = RedisPreferenceStore(redis.Redis(port=6379))   # doctest: +SKIP
    """

    def __init__(self, client: Any, prefix: str = "freshrec:") -> None:
        self.client = client
        self.key = prefix + "prefs"

    def set(self, user_id: str, categories: Sequence[str]) -> None:
        self.client.hset(self.key, user_id, json.dumps(list(dict.fromkeys(categories))))

    def get(self, user_id: str) -> list[str] | None:
        raw = self.client.hget(self.key, user_id)
        return None if raw is None else json.loads(raw)

    def delete(self, user_id: str) -> bool:
        return bool(self.client.hdel(self.key, user_id))

    def close(self) -> None:
        pass

"""SQLite event log: the embedded default.

WAL mode with ``synchronous=FULL``: a commit is on disk (fsynced) before :meth:`SQLiteEventLog.append`
returns, so a 2xx is only ever sent for durable events. ``AUTOINCREMENT`` keeps offsets strictly
increasing and never reused, even after ``delete_user`` removes the newest rows, which the online
trainer's committed offset relies on. Writers take ``BEGIN IMMEDIATE`` so several processes can share one
file safely (SQLite serialises them); readers use their own connection and never block the writer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from freshrec.events.identity import check_same_event, id_digest
from freshrec.position import Cursor
from freshrec.schema import AppendResult, EventRecord
from freshrec.storage_url import connect_sqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT UNIQUE,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    type TEXT NOT NULL,
    ts REAL NOT NULL,
    value REAL,
    context TEXT,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_user ON events(user_id, seq);
CREATE TABLE IF NOT EXISTS consumer_offsets (group_id TEXT PRIMARY KEY, committed INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS erased_event_ids (digest TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS erasures (n INTEGER PRIMARY KEY AUTOINCREMENT, user_digest TEXT NOT NULL, at REAL NOT NULL);
"""
_COLUMNS = "seq, user_id, item_id, type, ts, value, event_id, context"
_SQLITE_MAX_VARS = 500


def _record(row: tuple) -> EventRecord:
    seq, user_id, item_id, type_, ts, value, event_id, context = row
    return EventRecord(seq, user_id, item_id, type_, ts, value, event_id, json.loads(context) if context else None)


class SQLiteEventLog:
    """Durable, idempotent event log in one SQLite file. See :class:`freshrec.events.base.EventLog`.

    Example
    -------
    >>> import tempfile, pathlib
    >>> from freshrec.schema import EventRecord
    >>> log = SQLiteEventLog(pathlib.Path(tempfile.mkdtemp()) / "events.db")
    >>> e = EventRecord(0, "u1", "i1", "view", ts=1.0, event_id="e-1")
    >>> [(r.offset, r.duplicate) for r in log.append([e, e])]
    [(1, False), (1, True)]
    >>> log.count(), log.ends()
    (1, (1,))
    >>> log.close()
    """

    def __init__(self, path: Path | str, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, got {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous
        self._write = self._connect()
        self._write.executescript(_SCHEMA)
        self._read = self._connect()
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        #: One partition: offsets are the table's row ids.
        self.partitions = 1

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so a batch is exactly one transaction.
        conn = connect_sqlite(self.path, self._synchronous)
        conn.create_function("sha256", 1, id_digest, deterministic=True)
        return conn

    def append(self, events: Sequence[EventRecord]) -> list[AppendResult]:
        if not events:
            return []
        received_at = time.time()
        with self._write_lock:
            cur = self._write.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                ids = {e.event_id for e in events if e.event_id is not None}
                known = self._known_event_ids(cur, ids)
                known.update(self._erased_event_ids(cur, ids - set(known)))
                results: list[AppendResult] = []
                for e in events:
                    if e.event_id is not None and e.event_id in known:
                        check_same_event(e, known[e.event_id])
                        results.append(AppendResult(known[e.event_id][0], True))
                        continue
                    cur.execute(
                        "INSERT INTO events (event_id, user_id, item_id, type, ts, value, context, received_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            e.event_id,
                            e.user_id,
                            e.item_id,
                            e.type,
                            e.ts,
                            e.value,
                            json.dumps(e.context, separators=(",", ":")) if e.context else None,
                            received_at,
                        ),
                    )
                    offset = int(cur.lastrowid)  # type: ignore[arg-type]
                    if e.event_id is not None:
                        known[e.event_id] = (offset, e)
                    results.append(AppendResult(offset, False))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return results

    @staticmethod
    def _known_event_ids(cur: sqlite3.Cursor, event_ids: set[str]) -> dict[str, tuple[int, EventRecord | None]]:
        """Stored ids: their offset and event."""
        known: dict[str, tuple[int, EventRecord | None]] = {}
        ids = list(event_ids)
        for start in range(0, len(ids), _SQLITE_MAX_VARS):
            chunk = ids[start : start + _SQLITE_MAX_VARS]
            marks = ",".join("?" * len(chunk))
            for row in cur.execute(f"SELECT {_COLUMNS} FROM events WHERE event_id IN ({marks})", chunk):
                record = _record(row)
                known[record.event_id] = (record.offset, record)  # type: ignore[index]
        return known

    @staticmethod
    def _erased_event_ids(cur: sqlite3.Cursor, event_ids: set[str]) -> dict[str, tuple[int, EventRecord | None]]:
        """Ids of erased events: their offset (the event itself is gone)."""
        by_digest = {id_digest(i): i for i in event_ids}
        known: dict[str, tuple[int, EventRecord | None]] = {}
        digests = list(by_digest)
        for start in range(0, len(digests), _SQLITE_MAX_VARS):
            chunk = digests[start : start + _SQLITE_MAX_VARS]
            marks = ",".join("?" * len(chunk))
            for digest, seq in cur.execute(
                f"SELECT digest, seq FROM erased_event_ids WHERE digest IN ({marks})", chunk
            ):
                known[by_digest[digest]] = (int(seq), None)
        return known

    def read(self, after_offset: int = 0, limit: int = 10_000) -> list[EventRecord]:
        with self._read_lock:
            rows = self._read.execute(
                f"SELECT {_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_offset, limit)
            ).fetchall()
        return [_record(r) for r in rows]

    def user_events(self, user_id: str, limit: int | None = None) -> list[EventRecord]:
        with self._read_lock:
            rows = self._read.execute(
                f"SELECT {_COLUMNS} FROM events WHERE user_id = ? ORDER BY seq DESC LIMIT ?",
                (user_id, -1 if limit is None else limit),
            ).fetchall()
        return [_record(r) for r in reversed(rows)]

    def delete_user(self, user_id: str) -> int:
        with self._write_lock:
            cur = self._write.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.execute(
                    "INSERT OR IGNORE INTO erased_event_ids (digest, seq) "
                    "SELECT sha256(event_id), seq FROM events WHERE user_id = ? AND event_id IS NOT NULL",
                    (user_id,),
                )
                removed = cur.execute("DELETE FROM events WHERE user_id = ?", (user_id,)).rowcount
                if removed:
                    cur.execute(
                        "INSERT INTO erasures (user_digest, at) VALUES (?, ?)", (id_digest(user_id), time.time())
                    )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            if removed:
                # the write-ahead log still holds the deleted rows' pages until it is checkpointed
                self._write.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return removed

    def erasures(self, after: int = 0) -> list[tuple[int, str]]:
        with self._read_lock:
            rows = self._read.execute("SELECT n, user_digest FROM erasures WHERE n > ? ORDER BY n", (after,)).fetchall()
        return [(int(n), d) for n, d in rows]

    def ends(self) -> Cursor:
        with self._read_lock:
            row = self._read.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return (int(row[0]) if row else 0,)

    def count(self) -> int:
        with self._read_lock:
            return int(self._read.execute("SELECT count(*) FROM events").fetchone()[0])

    def commit(self, group: str, cursor: Sequence[int]) -> None:
        (offset,) = cursor
        with self._write_lock:
            self._write.execute(
                "INSERT INTO consumer_offsets (group_id, committed) VALUES (?, ?) "
                "ON CONFLICT(group_id) DO UPDATE SET committed = excluded.committed",
                (group, offset),
            )

    def committed(self, group: str) -> Cursor | None:
        with self._read_lock:
            row = self._read.execute("SELECT committed FROM consumer_offsets WHERE group_id = ?", (group,)).fetchone()
        return (int(row[0]),) if row else None

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._write.close()
            self._read.close()

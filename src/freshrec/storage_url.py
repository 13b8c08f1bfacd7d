"""Parsing of store URLs (``sqlite:///relative.db``, ``sqlite:////abs/path.db``, ``memory://``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def split_url(url: str) -> tuple[str, str]:
    """``(scheme, rest)`` of a store URL; raises ``ValueError`` when there is no scheme."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise ValueError(f"store URL {url!r} has no scheme (expected e.g. sqlite:///path.db)")
    return scheme, rest


def sqlite_path(url: str) -> Path:
    """Database path of a ``sqlite:///`` URL (SQLAlchemy convention: four slashes for absolute paths).

    Example
    -------
    >>> str(sqlite_path("sqlite:////var/lib/fr/events.db")), str(sqlite_path("sqlite:///data/events.db"))
    ('/var/lib/fr/events.db', 'data/events.db')
    """
    scheme, rest = split_url(url)
    if scheme != "sqlite" or not rest.startswith("/") or len(rest) < 2:
        raise ValueError(f"not a sqlite URL: {url!r} (expected sqlite:///<path>)")
    return Path(rest[1:])


def connect_sqlite(path: Path | str, synchronous: str = "FULL") -> sqlite3.Connection:
    """The one way every embedded store opens SQLite: autocommit (callers write their own
    transactions), shared across threads, WAL, and the given fsync level.

    >>> import tempfile, pathlib
    >>> conn = connect_sqlite(pathlib.Path(tempfile.mkdtemp()) / "x.db")
    >>> conn.execute("PRAGMA journal_mode").fetchone()[0]
    'wal'
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn

"""Parsing of store URLs (``sqlite:///relative.db``, ``sqlite:////abs/path.db``, ``memory://``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

#: Seconds a Redis call keeps retrying while Redis restarts (it refuses connections, then loads its data);
#: after that the request answers 503 and the client retries.
REDIS_RETRY_S = 5.0


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
    transactions), shared across threads, WAL, the given fsync level, and ``secure_delete`` (deleted rows are
    overwritten, not left in free pages: erasure must erase).

    >>> import tempfile, pathlib
    >>> conn = connect_sqlite(pathlib.Path(tempfile.mkdtemp()) / "x.db")
    >>> conn.execute("PRAGMA journal_mode").fetchone()[0]
    'wal'
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA secure_delete=ON")
    return conn


def connect_redis(url: str) -> Any:
    """The one way every store opens Redis: calls retry with backoff for :data:`REDIS_RETRY_S` while Redis is
    unreachable or still loading its data after a restart, so a restart is a pause, not an error. A
    transaction that was watching keys is not retried blindly: redis-py raises ``WatchError`` and the caller
    re-reads (see :class:`freshrec.state.redis.RedisStateStore`)."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import BusyLoadingError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry

    # backoff 10 ms doubling to 0.5 s: about REDIS_RETRY_S in all
    retries = int(REDIS_RETRY_S / 0.5) + 6
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.01), retries),
        retry_on_error=[BusyLoadingError, RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
    )

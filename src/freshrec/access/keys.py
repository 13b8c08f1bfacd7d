"""API keys with scopes, stored hashed.

A key reads ``fr_<id>_<secret>``: the id (8 hex digits) finds the record, the secret (32 random bytes,
URL-safe) is checked against its SHA-256, compared in constant time. The key itself is shown once, when it
is created, and never stored. Scopes: ``ingest`` (events, onboarding preferences), ``read``
(recommendations, users' live state, items, model info, metrics), ``catalog`` (item upserts) and ``admin``
(everything, including erasure, export and model switches).

Backends: SQLite (``<data_dir>/keys.db``, the embedded default) and Redis (every worker of a scaled-out
deployment reads the same keys), chosen like the live state (:func:`open_key_store`).

>>> import tempfile, pathlib
>>> store = SQLiteKeyStore(pathlib.Path(tempfile.mkdtemp()) / "keys.db")
>>> key, info = store.create("shop frontend", ["read", "ingest"])
>>> store.verify(key).scopes, store.verify("fr_00000000_nope")
(('ingest', 'read'), None)
>>> store.revoke(info.key_id); store.verify(key) is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from freshrec.errors import InvalidInput, NotFound
from freshrec.storage_url import connect_sqlite

SCOPES = ("ingest", "read", "catalog", "admin")
_KEY = re.compile(r"^fr_([0-9a-f]{8})_([A-Za-z0-9_-]{16,128})$")


@dataclass(frozen=True)
class KeyInfo:
    """A key's record (never its secret)."""

    key_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: float
    revoked_at: float | None = None
    rate_limit: float | None = None  # requests per second; None: the deployment's default

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "rate_limit": self.rate_limit,
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise InvalidInput(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}")
    return tuple(sorted(set(scopes)))


def split_key(key: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a well-formed key, else ``None``."""
    m = _KEY.match(key)
    return (m.group(1), m.group(2)) if m else None


class KeyStore(Protocol):
    """Guarantees (``tests/access/test_keys_contract.py``): a created key verifies with its scopes until it is
    revoked; a wrong secret, an unknown id or a malformed key never verifies; only digests are stored."""

    def create(self, name: str, scopes: Sequence[str], rate_limit: float | None = None) -> tuple[str, KeyInfo]:
        """A new key and its record; the key is returned only here."""
        ...

    def verify(self, key: str) -> KeyInfo | None:
        """The record of a valid, unrevoked key, else ``None``."""
        ...

    def list(self) -> list[KeyInfo]:
        """Every key's record, revoked ones too, oldest first."""
        ...

    def revoke(self, key_id: str) -> None:
        """Revoke a key for good (:class:`NotFound` for an unknown id)."""
        ...

    def close(self) -> None: ...


def _new(name: str, scopes: Sequence[str], rate_limit: float | None) -> tuple[str, str, KeyInfo]:
    if not name.strip() or len(name) > 200:
        raise InvalidInput("a key needs a name of 1 to 200 characters (who or what uses it)")
    if rate_limit is not None and not rate_limit > 0:
        raise InvalidInput("a key's rate limit must be a positive number of requests per second")
    key_id, secret = secrets.token_hex(4), secrets.token_urlsafe(32)
    info = KeyInfo(key_id, name.strip(), check_scopes(scopes), time.time(), None, rate_limit)
    return f"fr_{key_id}_{secret}", _digest(secret), info


def _matches(stored_digest: str, secret: str) -> bool:
    return hmac.compare_digest(stored_digest, _digest(secret))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    digest TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL,
    rate_limit REAL
);
"""


class SQLiteKeyStore:
    """Keys in one SQLite file. See :class:`KeyStore`."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = connect_sqlite(self.path, "FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    @staticmethod
    def _info(row: tuple) -> KeyInfo:
        key_id, name, scopes, created_at, revoked_at, rate_limit = row
        return KeyInfo(key_id, name, tuple(scopes.split(",")), created_at, revoked_at, rate_limit)

    def create(self, name: str, scopes: Sequence[str], rate_limit: float | None = None) -> tuple[str, KeyInfo]:
        key, digest, info = _new(name, scopes, rate_limit)
        with self._lock:
            self._db.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL, ?)",
                (info.key_id, info.name, ",".join(info.scopes), digest, info.created_at, rate_limit),
            )
        return key, info

    def verify(self, key: str) -> KeyInfo | None:
        parts = split_key(key)
        if parts is None:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT key_id, name, scopes, created_at, revoked_at, rate_limit, digest FROM api_keys "
                "WHERE key_id = ?",
                (parts[0],),
            ).fetchone()
        if row is None or row[4] is not None or not _matches(row[6], parts[1]):
            return None
        return self._info(row[:6])

    def list(self) -> list[KeyInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key_id, name, scopes, created_at, revoked_at, rate_limit FROM api_keys ORDER BY created_at"
            ).fetchall()
        return [self._info(r) for r in rows]

    def revoke(self, key_id: str) -> None:
        with self._lock:
            cur = self._db.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE key_id = ?", (time.time(), key_id)
            )
        if cur.rowcount == 0:
            raise NotFound(f"no API key with id {key_id!r}")

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RedisKeyStore:
    """Keys in a Redis hash (``<prefix>apikeys``: key id -> JSON record with the digest). See
    :class:`KeyStore`."""

    def __init__(self, client: Any, prefix: str = "freshrec:") -> None:
        self.client = client
        self.hash = f"{prefix}apikeys"

    def create(self, name: str, scopes: Sequence[str], rate_limit: float | None = None) -> tuple[str, KeyInfo]:
        key, digest, info = _new(name, scopes, rate_limit)
        self.client.hset(self.hash, info.key_id, json.dumps({**info.to_dict(), "digest": digest}))
        return key, info

    @staticmethod
    def _info(d: dict[str, Any]) -> KeyInfo:
        return KeyInfo(
            d["key_id"], d["name"], tuple(d["scopes"]), d["created_at"], d.get("revoked_at"), d.get("rate_limit")
        )

    def verify(self, key: str) -> KeyInfo | None:
        parts = split_key(key)
        if parts is None:
            return None
        raw = self.client.hget(self.hash, parts[0])
        if raw is None:
            return None
        d = json.loads(raw)
        if d.get("revoked_at") is not None or not _matches(d["digest"], parts[1]):
            return None
        return self._info(d)

    def list(self) -> list[KeyInfo]:
        return sorted((self._info(json.loads(v)) for v in self.client.hvals(self.hash)), key=lambda k: k.created_at)

    def revoke(self, key_id: str) -> None:
        script = (
            "local v = redis.call('HGET', KEYS[1], ARGV[1]) if not v then return 0 end "
            "local d = cjson.decode(v) if d['revoked_at'] == nil or d['revoked_at'] == cjson.null then "
            "d['revoked_at'] = tonumber(ARGV[2]) redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(d)) end return 1"
        )
        if not self.client.eval(script, 1, self.hash, key_id, time.time()):
            raise NotFound(f"no API key with id {key_id!r}")

    def close(self) -> None:
        pass


def open_key_store(state_url: str, data_dir: Path) -> KeyStore:
    """Redis when the deployment's live state is there (every worker reads the same keys), else
    ``<data_dir>/keys.db``."""
    if state_url.startswith(("redis://", "rediss://")):
        from freshrec.storage_url import connect_redis

        return RedisKeyStore(connect_redis(state_url))
    return SQLiteKeyStore(Path(data_dir) / "keys.db")

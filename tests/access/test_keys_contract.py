"""The KeyStore contract, on every backend: SQLite (embedded) and Redis (shared by workers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from freshrec.access.keys import KeyStore, RedisKeyStore, SQLiteKeyStore
from freshrec.errors import InvalidInput, NotFound


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyStore]:
    if request.param == "sqlite":
        opened: KeyStore = SQLiteKeyStore(tmp_path / "keys.db")
    else:
        import redis

        opened = RedisKeyStore(redis.Redis.from_url(request.getfixturevalue("empty_redis")))
    yield opened
    opened.close()


def test_a_created_key_verifies_with_its_scopes_until_revoked(store: KeyStore) -> None:
    key, info = store.create("frontend", ["read", "ingest", "read"], rate_limit=50)
    found = store.verify(key)
    assert found is not None and found.key_id == info.key_id and found.scopes == ("ingest", "read")
    assert found.allows("read") and not found.allows("admin") and found.rate_limit == 50
    store.revoke(info.key_id)
    assert store.verify(key) is None
    [listed] = store.list()
    assert listed.revoked_at is not None and listed.name == "frontend"


def test_admin_allows_every_scope(store: KeyStore) -> None:
    key, _ = store.create("ops", ["admin"])
    info = store.verify(key)
    assert info is not None and all(info.allows(s) for s in ("ingest", "read", "catalog", "admin"))


def test_wrong_secrets_unknown_ids_and_malformed_keys_never_verify(store: KeyStore) -> None:
    key, _ = store.create("x", ["read"])
    assert store.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.verify(f"fr_{'0' * 8}_{key.split('_', 2)[2]}") is None
    for bad in ("", "fr_", "Bearer " + key, key + " ", "fr_zzzzzzzz_" + "a" * 40, "x" * 5000):
        assert store.verify(bad) is None


def test_only_digests_are_stored(store: KeyStore, tmp_path: Path) -> None:
    key, _ = store.create("x", ["read"])
    secret = key.split("_", 2)[2]
    if isinstance(store, SQLiteKeyStore):
        store.close()
        assert secret.encode() not in (tmp_path / "keys.db").read_bytes()
    else:
        assert all(secret.encode() not in v for v in store.client.hvals(store.hash))


def test_bad_requests_are_refused(store: KeyStore) -> None:
    with pytest.raises(InvalidInput, match="scopes"):
        store.create("x", ["superuser"])
    with pytest.raises(InvalidInput, match="scopes"):
        store.create("x", [])
    with pytest.raises(InvalidInput, match="name"):
        store.create(" ", ["read"])
    with pytest.raises(NotFound):
        store.revoke("deadbeef")
    assert store.list() == []

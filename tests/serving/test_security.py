"""Access control and hardening of the HTTP service, with keys on (the default): scopes, limits, safe inputs,
erasure and export, the audit log."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from freshrec.access.audit import AuditLog
from freshrec.access.keys import open_key_store
from freshrec.config import Settings
from freshrec.serving import security
from freshrec.serving.app import create_app
from tests.conftest import make_settings


def secured(data_dir: Path, **sections: dict) -> Settings:
    return make_settings(data_dir, security={"auth": True, **sections.pop("security", {})}, **sections)


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, dict[str, str]], Settings]]:
    settings = secured(tmp_path / "data")
    store = open_key_store(settings.storage.state_url, settings.storage.data_dir)
    headers = {}
    for scope in ("ingest", "read", "catalog", "admin"):
        key, _ = store.create(f"{scope} client", [scope])
        headers[scope] = {"Authorization": f"Bearer {key}"}
    store.close()
    with TestClient(create_app(settings)) as client:
        yield client, headers, settings


EVENT = {"user_id": "u1", "item_id": "i1", "type": "view", "context": {"page": "home"}}


def stored(client: TestClient) -> int:
    return client.app.state.engine.event_log.count()


def test_every_route_but_health_needs_a_key_with_the_right_scope(keyed) -> None:
    client, h, _ = keyed
    assert client.get("/health").status_code == 200
    r = client.post("/v1/events", json=EVENT)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer" and "key" in r.json()["detail"]
    assert (
        client.post("/v1/events", json=EVENT, headers={"Authorization": "Bearer fr_12345678_nope"}).status_code == 401
    )
    assert client.post("/v1/events", json=EVENT, headers={"Authorization": "Basic dXNlcjpwdw=="}).status_code == 401
    assert client.post("/v1/events", json=EVENT, headers=h["read"]).status_code == 403
    assert client.post("/v1/events", json=EVENT, headers=h["ingest"]).status_code == 200
    assert client.get("/v1/users/u1/recommendations", headers=h["ingest"]).status_code == 403
    assert client.get("/v1/users/u1/recommendations", headers=h["read"]).status_code == 200
    assert client.put("/v1/items", json={"item_id": "i2"}, headers=h["read"]).status_code == 403
    assert client.put("/v1/items", json={"item_id": "i2"}, headers=h["catalog"]).status_code == 200
    assert client.delete("/v1/users/u1", headers=h["read"]).status_code == 403
    assert client.get("/v1/users/u1/export", headers=h["ingest"]).status_code == 403
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=h["read"]).status_code == 200
    # admin carries every scope
    assert client.get("/v1/users/u1/recommendations", headers=h["admin"]).status_code == 200
    assert stored(client) == 1


def test_a_revoked_key_stops_working(keyed, monkeypatch: pytest.MonkeyPatch) -> None:
    client, _, settings = keyed
    monkeypatch.setattr(security, "KEY_CACHE_S", 0.0)
    store = open_key_store(settings.storage.state_url, settings.storage.data_dir)
    key, info = store.create("temp", ["read"])
    auth = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/model", headers=auth).status_code in (200, 503)
    store.revoke(info.key_id)
    store.close()
    assert client.get("/v1/model", headers=auth).status_code == 401


def test_public_metrics_and_no_docs_are_settings(tmp_path: Path) -> None:
    settings = secured(tmp_path / "data", security={"public_metrics": True, "docs": False})
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/docs").status_code == 404 and client.get("/openapi.json").status_code == 404


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(keyed) -> None:
    client, _, settings = keyed
    store = open_key_store(settings.storage.state_url, settings.storage.data_dir)
    key, _ = store.create("slow client", ["read"], rate_limit=0.5)  # a burst of 1, then one per 2 s
    store.close()
    auth = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/model", headers=auth).status_code != 429
    r = client.get("/v1/model", headers=auth)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_bodies_must_be_json(keyed) -> None:
    client, h, _ = keyed
    body = json.dumps(EVENT)
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {**h["ingest"], **({"Content-Type": kind} if kind else {})}
        r = client.post("/v1/events", content=body.encode(), headers=headers)
        assert r.status_code == 415, (kind, r.text)
    assert stored(client) == 0
    ok = client.post("/v1/events", content=body, headers={**h["ingest"], "Content-Type": "application/json"})
    assert ok.status_code == 200


def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(tmp_path: Path) -> None:
    settings = secured(tmp_path / "data", security={"auth": False}, events={"max_body_bytes": 4096})
    sent = []

    def chunks() -> Iterator[bytes]:
        for n in range(10_000):  # 10 MB if it were all read
            sent.append(n)
            yield b" " * 1024

    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/events", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "4096" in r.json()["detail"]
        r = client.post("/v1/model/reload", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert stored(client) == 0


def test_a_keyless_server_answers_only_local_host_names(tmp_path: Path) -> None:
    settings = secured(tmp_path / "data", security={"auth": False})
    with TestClient(create_app(settings), base_url="http://localhost:8000") as client:
        assert client.get("/health").status_code == 200
        r = client.get("/health", headers={"Host": "attacker.example:8000"})
        assert r.status_code == 400 and "allowed_hosts" in r.json()["detail"]
    listed = secured(tmp_path / "data2", security={"allowed_hosts": ["api.shop.example"]})
    with TestClient(create_app(listed), base_url="http://api.shop.example") as client:
        assert client.get("/health").status_code == 200
        assert client.get("/health", headers={"Host": "other.example"}).status_code == 400


def test_cors_is_off_unless_origins_are_listed(keyed, tmp_path: Path) -> None:
    client, _, _ = keyed
    preflight = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v1/events", headers=preflight).headers
    settings = secured(tmp_path / "cors", security={"cors_origins": ["https://shop.example"]})
    with TestClient(create_app(settings)) as other:
        r = other.options("/v1/events", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://shop.example"


def test_model_versions_are_names_never_paths(keyed) -> None:
    client, h, settings = keyed
    data_dir = str(settings.storage.data_dir)
    for version in ("../versions/v00001", "/tmp", "v00001/../../x", "..", "v1/.."):
        r = client.post("/v1/model/reload", json={"version": version}, headers=h["admin"])
        assert r.status_code == 404, r.text
        assert data_dir not in r.text and "/tmp/" not in r.json()["detail"]
    assert not (settings.storage.data_dir / "models" / "CURRENT").exists()


def test_timestamps_from_the_future_and_unaddressable_ids_are_refused(keyed) -> None:
    client, h, _ = keyed
    far = {**EVENT, "ts": time.time() + 86_400}
    r = client.post("/v1/events", json=far, headers=h["ingest"])
    assert r.status_code == 422 and "max_future_s" in r.json()["detail"]
    near = {**EVENT, "ts": time.time() + 60}  # a client clock a minute fast is fine
    assert client.post("/v1/events", json=near, headers=h["ingest"]).status_code == 200
    for bad in ({**EVENT, "user_id": "a/b"}, {**EVENT, "user_id": ".."}, {**EVENT, "item_id": "x/y"}):
        assert client.post("/v1/events", json=bad, headers=h["ingest"]).status_code == 422
    assert stored(client) == 1


def test_every_422_has_one_body_shape(keyed) -> None:
    client, h, _ = keyed
    r = client.get("/v1/users/u1/recommendations", params={"k": "many"}, headers=h["read"])
    assert r.status_code == 422 and isinstance(r.json()["detail"], str) and "k" in r.json()["detail"]


def test_a_conflicting_payload_under_a_known_event_id_gets_409(keyed) -> None:
    client, h, _ = keyed
    first = {**EVENT, "event_id": "e-1"}
    assert client.post("/v1/events", json=first, headers=h["ingest"]).json()["accepted"] == 1
    again = client.post("/v1/events", json={**first, "ts": 5.0}, headers=h["ingest"]).json()
    assert again["duplicates"] == 1  # a retry (another timestamp is fine)
    r = client.post("/v1/events", json=[{**EVENT, "item_id": "new"}, {**first, "item_id": "i9"}], headers=h["ingest"])
    assert r.status_code == 409 and "e-1" in r.json()["detail"]
    assert stored(client) == 1  # nothing of that batch


def test_export_then_erasure_everywhere_and_resent_events_stay_deleted(keyed) -> None:
    client, h, settings = keyed
    events = [
        {**EVENT, "item_id": f"i{n}", "event_id": f"secret-{n}", "context": {"email": "ada@example.org"}}
        for n in range(3)
    ]
    assert client.post("/v1/events", json=events, headers=h["ingest"]).status_code == 200
    client.put("/v1/items", json={"item_id": "i1", "categories": ["c"]}, headers=h["catalog"])
    assert client.post("/v1/users/u1/preferences", json={"categories": ["c"]}, headers=h["ingest"]).status_code == 200
    export = client.get("/v1/users/u1/export", headers=h["admin"]).json()
    assert [e["event_id"] for e in export["events"]] == ["secret-0", "secret-1", "secret-2"]
    assert export["events"][0]["context"] == {"email": "ada@example.org"}
    assert len(export["state"]["sequence"]) == 3 and export["preferences"] == ["c"]
    assert client.delete("/v1/users/u1", headers=h["admin"]).json() == {"deleted_events": 3}
    assert client.get("/v1/users/u1/export", headers=h["admin"]).status_code == 404
    # no copy in the database files, their write-ahead logs included
    for path in settings.storage.data_dir.glob("*.db*"):
        raw = path.read_bytes()
        assert b"ada@example.org" not in raw and b"secret-1" not in raw, path.name
    # a client retrying its old events does not bring the user back
    again = client.post("/v1/events", json=events, headers=h["ingest"]).json()
    assert again["duplicates"] == 3 and again["accepted"] == 0
    assert client.get("/v1/users/u1", headers=h["read"]).status_code == 404


def test_admin_actions_are_in_the_audit_log(keyed) -> None:
    client, h, settings = keyed
    client.post("/v1/events", json=EVENT, headers=h["ingest"])
    client.delete("/v1/users/u1", headers=h["admin"])
    client.post("/v1/model/reload", json={"version": "v00009"}, headers=h["admin"])
    client.delete("/v1/users/u1", headers=h["read"])  # refused: recorded too
    entries = AuditLog(settings.storage.data_dir / "audit.log").read()
    assert [(e["action"], e["status"], e["key_name"]) for e in entries] == [
        ("DELETE /v1/users/u1", 200, "admin client"),
        ("POST /v1/model/reload", 404, "admin client"),
        ("DELETE /v1/users/u1", 403, "read client"),
    ]

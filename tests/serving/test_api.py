"""HTTP API through the ASGI app (in-process). Real-server behaviour is in test_server.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from freshrec.engine import Engine
from freshrec.serving.app import create_app
from tests.conftest import TrainedStore


@pytest.fixture
def client(trained_engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(trained_engine.settings, trained_engine)) as c:
        yield c


def store_snapshot(engine: Engine) -> tuple:
    return engine.event_log.count(), engine.event_log.ends()[0], len(engine.catalog), len(engine.state)


def test_post_event_then_recommend(client: TestClient, trained: TrainedStore) -> None:
    user = trained.shop.events[-1].user_id
    before = client.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()
    top = before["items"][0]["item_id"]
    r = client.post("/v1/events", json={"user_id": user, "item_id": top, "type": "click", "event_id": "t-1"})
    assert r.status_code == 200 and r.json()["accepted"] == 1
    after = client.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()
    assert top not in [i["item_id"] for i in after["items"]]
    newest = client.get(f"/v1/users/{user}").json()["sequence"][-1]
    assert (newest["item_id"], newest["type"]) == (top, "click")
    again = client.post("/v1/events", json={"user_id": user, "item_id": top, "type": "click", "event_id": "t-1"})
    assert again.json() == {"accepted": 0, "duplicates": 1, "offsets": r.json()["offsets"]}


def test_batch_forms(client: TestClient) -> None:
    ev = {"user_id": "b", "item_id": "sku-00001", "type": "view"}
    assert client.post("/v1/events", json=[ev, ev]).json()["accepted"] == 2
    assert client.post("/v1/events", json={"events": [ev]}).json()["accepted"] == 1
    assert len(client.get("/v1/users/b").json()["sequence"]) == 1  # three views of one item collapse


GOOD = {"user_id": "u", "item_id": "i", "type": "view"}


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"item_id": "i", "type": "view"}, 422, "user_id: Field required"),
        ({**GOOD, "user_id": 42}, 422, "user_id: Input should be a valid string"),
        ({**GOOD, "ts": "yesterday"}, 422, "ts"),
        ({**GOOD, "value": "high"}, 422, "value"),
        ({**GOOD, "type": "teleport"}, 422, "unknown event type 'teleport'"),
        ({**GOOD, "type": "VIEW!"}, 422, "type: String should match pattern"),
        ({**GOOD, "user_id": ""}, 422, "user_id: String should have at least 1 character"),
        ({**GOOD, "user_id": "   "}, 422, "must not be empty"),
        ({**GOOD, "item_id": "a\nb"}, 422, "control characters"),
        ({**GOOD, "item_id": "x" * 300}, 422, "longer than events.max_id_length=256"),
        ({**GOOD, "extra": 1}, 422, "extra: Extra inputs are not permitted"),
        ([GOOD, {**GOOD, "type": 3}], 422, "events.1.type"),
        ([GOOD] * 1001, 413, "exceeds the limit of 1000"),
        ([], 422, "no events given"),
        ("just a string", 422, "expected a JSON object"),
    ],
)
def test_malformed_events_get_4xx_and_store_nothing(
    client: TestClient, trained_engine: Engine, body: object, status: int, reason: str
) -> None:
    before = store_snapshot(trained_engine)
    r = client.post("/v1/events", json=body)
    assert r.status_code == status, r.text
    assert reason in r.json()["detail"] if isinstance(r.json()["detail"], str) else reason in r.text
    assert store_snapshot(trained_engine) == before


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"user_id": "u", "item_id": "\xff\xfe", "type": "view"}', "not valid UTF-8"),
        (b'{"user_id": "u", ', "not valid JSON"),
        (b"", "empty"),
    ],
)
def test_undecodable_bodies(client: TestClient, trained_engine: Engine, raw: bytes, reason: str) -> None:
    before = store_snapshot(trained_engine)
    r = client.post("/v1/events", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and reason in r.json()["detail"]
    assert store_snapshot(trained_engine) == before


@pytest.mark.parametrize("k", ["0", "-1", "501", "ten"])
def test_k_out_of_range(client: TestClient, k: str) -> None:
    r = client.get("/v1/users/anyone/recommendations", params={"k": k})
    assert r.status_code == 422
    assert "k" in r.text


def test_objective_over_http(client: TestClient, trained: TrainedStore) -> None:
    user = trained.shop.events[-1].user_id
    body = client.get(f"/v1/users/{user}/recommendations", params={"objective": "conversion"}).json()
    assert body["objective"] == "conversion" and body["source"] == "model"
    r = client.get(f"/v1/users/{user}/recommendations", params={"objective": "revenue"})
    assert r.status_code == 422 and "objective" in r.json()["detail"]
    assert client.get("/v1/users/nobody/recommendations").json()["objective"] is None  # trending


def test_over_long_user_id_in_path(client: TestClient) -> None:
    r = client.get(f"/v1/users/{'u' * 300}/recommendations")
    assert r.status_code == 422 and "max_id_length" in r.json()["detail"]


def test_items_upsert_get_and_errors(client: TestClient, trained_engine: Engine) -> None:
    r = client.put("/v1/items", json=[{"item_id": "new-1", "title": "New tent", "categories": ["camping"]}])
    assert r.json() == {"upserted": 1, "created": 1}
    assert client.get("/v1/items/new-1").json()["title"] == "New tent"
    assert client.put("/v1/items", json={"items": [{"item_id": "new-1", "available": False}]}).status_code == 200
    assert client.get("/v1/items/new-1").json() == {
        "item_id": "new-1",
        "title": "New tent",
        "text": None,
        "categories": ["camping"],
        "attributes": {},
        "available": False,
    }
    before = store_snapshot(trained_engine)
    bad = client.put("/v1/items", json=[{"item_id": "ok"}, {"item_id": "x", "attributes": {"p": "cheap"}}])
    assert bad.status_code == 422 and "items.1.attributes.p" in bad.json()["detail"]
    assert client.put("/v1/items", json=[{"item_id": "d"}, {"item_id": "d"}]).status_code == 422
    assert store_snapshot(trained_engine) == before
    assert client.get("/v1/items/nope").status_code == 404


def test_similar_model_health_metrics_openapi(client: TestClient, trained: TrainedStore) -> None:
    item = trained.shop.items[3].item_id
    sim = client.get(f"/v1/items/{item}/similar", params={"k": 3}).json()
    assert len(sim["items"]) == 3 and sim["model_version"] == trained.version
    assert client.get("/v1/items/unknown-item/similar").status_code == 404
    info = client.get("/v1/model").json()
    assert info["version"] == trained.version and info["metrics"]["model"]["ndcg@10"] > 0
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model_version"] == trained.version
    assert health["last_offset"] == len(trained.shop.events)
    text = client.get("/metrics").text
    assert "freshrec_request_seconds_bucket" in text and "freshrec_users" in text
    spec = client.get("/openapi.json").json()
    assert "EventIn" in spec["components"]["schemas"] and "/v1/events" in spec["paths"]


def test_model_reload_switches_versions(client: TestClient, trained_engine: Engine) -> None:
    registry = trained_engine.registry
    current = registry.current()
    loaded = registry.load(current)
    v2 = registry.publish(
        loaded.model, loaded.item_ids, loaded.event_types, {"metrics": {"note": "copy"}}, parent=current
    )
    assert client.get("/v1/model").json()["version"] == current  # publishing alone does not swap
    r = client.post("/v1/model/reload")
    assert r.status_code == 200 and r.json()["version"] == v2
    r = client.post("/v1/model/reload", json={"version": current})
    assert r.json()["version"] == current
    assert client.post("/v1/model/reload", json={"version": "v09999"}).status_code == 404


def test_delete_user(client: TestClient) -> None:
    client.post("/v1/events", json={"user_id": "gone", "item_id": "sku-00002", "type": "view"})
    assert client.delete("/v1/users/gone").json() == {"deleted_events": 1}
    assert client.get("/v1/users/gone").status_code == 404
    assert client.get("/v1/users/gone/recommendations").json()["source"] == "trending"
    assert client.delete("/v1/users/gone").status_code == 404

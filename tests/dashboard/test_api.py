"""The routes behind the dashboard: the page and its assets without a key, the overview's summary, and the
model actions (rollback, pin, unpin) with their scopes, errors and audit lines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from freshrec.quality.report import QUALITY_REPORT, write_report
from freshrec.serving.app import create_app
from tests.conftest import TrainedStore, make_settings
from tests.dashboard.conftest import PIXEL_PNG, DashboardStore, report_folder


@pytest.fixture
def keyed(dashboard_store: DashboardStore) -> Iterator[tuple[TestClient, dict[str, dict[str, str]], str]]:
    """A keyed app on the trained store with a child version current, and a read and an admin key."""
    settings = make_settings(dashboard_store.data_dir, security={"auth": True})
    headers = {
        scope: {"Authorization": f"Bearer {key}"}
        for scope, key in (("read", dashboard_store.read_key), ("admin", dashboard_store.admin_key))
    }
    with TestClient(create_app(settings)) as client:
        yield client, headers, dashboard_store.child


def test_the_page_and_its_assets_are_served_without_a_key(keyed) -> None:
    client, _, _ = keyed
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "/dashboard/assets/dashboard.js" in page.text
    assert client.get("/dashboard/assets/dashboard.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/dashboard/assets/dashboard.css").status_code == 200
    assert client.get("/dashboard/assets/index.html").status_code == 404
    assert client.get("/dashboard/assets/..%2Fapp.py").status_code == 404


def test_the_summary_needs_a_key_and_counts_the_service_not_itself(keyed, trained: TrainedStore) -> None:
    client, h, child = keyed
    assert client.get("/v1/dashboard/summary").status_code == 401
    client.get("/v1/users/u1/recommendations", headers=h["read"])
    first = client.get("/v1/dashboard/summary", headers=h["read"]).json()
    client.post("/v1/events", json={"user_id": "u1", "item_id": "i1", "type": "view"}, headers=h["admin"])
    second = client.get("/v1/dashboard/summary", headers=h["read"]).json()
    assert first["requests"] == 1 and second["requests"] == 2  # the summary's own requests are left out
    assert second["events"] == first["events"] + 1 and second["last_offset"] == first["last_offset"] + 1
    assert second["latency"][-1]["count"] <= second["requests"]
    assert second["model_version"] == child and second["users"] > 0
    # the copied version was trained through the shop's events; the new event is not in it yet
    assert second["trainer_lag"] == 1
    assert second["trainer"] is None and second["guard"] is None
    report = {"enabled": True, "flags": {"type_mix_drift": True}, "flagged_by_reason": {"burst": 2}}
    write_report(client.app.state.settings.storage.data_dir / QUALITY_REPORT, report)
    guard = client.get("/v1/dashboard/summary", headers=h["read"]).json()["guard"]
    assert guard["flags"] == {"type_mix_drift": True} and guard["flagged_by_reason"] == {"burst": 2}


def test_rollback_pin_and_unpin_switch_serving_and_are_audited(keyed, trained: TrainedStore) -> None:
    client, h, child = keyed
    parent = trained.version
    assert client.post("/v1/model/pin", json={}, headers=h["read"]).status_code == 403
    state = client.post("/v1/model/rollback", headers=h["admin"]).json()
    assert state == {"current": parent, "pinned": None, "serving": parent}
    state = client.post("/v1/model/pin", json={"version": child}, headers=h["admin"]).json()
    assert state == {"current": child, "pinned": child, "serving": child}
    refused = client.post("/v1/model/rollback", json={"to": parent}, headers=h["admin"])
    assert refused.status_code == 409 and "pinned" in refused.json()["detail"]
    assert client.post("/v1/model/pin", json={"version": "v99999"}, headers=h["admin"]).status_code == 404
    assert client.post("/v1/model/pin", json={"version": "../x"}, headers=h["admin"]).status_code == 404
    assert client.post("/v1/model/pin", json={"version": 3}, headers=h["admin"]).status_code == 422
    state = client.post("/v1/model/unpin", headers=h["admin"]).json()
    assert state == {"current": child, "pinned": None, "serving": child}
    assert client.get("/v1/model/history", headers=h["read"]).json()["pinned"] is None
    audit = [(e["action"], e["status"]) for e in client.app.state.audit.read()]
    assert audit == [
        ("POST /v1/model/pin", 403),
        ("POST /v1/model/rollback", 200),
        ("POST /v1/model/pin", 200),
        ("POST /v1/model/rollback", 409),
        ("POST /v1/model/pin", 404),
        ("POST /v1/model/pin", 404),
        ("POST /v1/model/pin", 422),
        ("POST /v1/model/unpin", 200),
    ]


def test_the_item_inspection_names_the_row_and_counts_exposures(keyed, trained: TrainedStore) -> None:
    client, h, child = keyed
    engine = client.app.state.engine
    assert client.get("/v1/dashboard/items/nope", headers=h["read"]).status_code == 404
    user = trained.shop.events[-1].user_id
    top = client.get(f"/v1/users/{user}/recommendations", params={"k": 3}, headers=h["read"]).json()["items"]
    client.get(f"/v1/users/{user}/recommendations", params={"k": 3}, headers=h["read"])
    info = client.get(f"/v1/dashboard/items/{top[0]['item_id']}", headers=h["read"]).json()
    assert info["exposures"] == 2 and info["row"] == "learned" and info["model_version"] == child
    idx = engine.catalog.internal_id(top[0]["item_id"], create=False)
    assert info["interactions"] == int(engine.trending.counts(len(engine.catalog))[idx]) > 0
    # a new item has no learned row; with content it is scored through its mapped row
    new = {"item_id": "new-tent", "title": "Four-season tent", "text": "a light tent", "categories": ["camping"]}
    assert client.put("/v1/items", json=new, headers=h["admin"]).is_success
    info = client.get("/v1/dashboard/items/new-tent", headers=h["read"]).json()
    new_idx = engine.catalog.internal_id("new-tent", create=False)
    mapped = not engine.recommender.serving.vectors_of([new_idx]).isnan().any()
    assert info["row"] == ("content" if mapped else "none")
    assert info["exposures"] == 0 and info["interactions"] == 0 and info["item"]["title"] == "Four-season tent"


def test_reports_are_listed_by_name_and_served_only_from_their_folders(tmp_path: Path) -> None:
    folder = report_folder(tmp_path / "replay-report")
    settings = make_settings(tmp_path / "data", serving={"reports_dirs": [folder, tmp_path / "missing"]})
    with TestClient(create_app(settings)) as client:
        listed = client.get("/v1/dashboard/reports").json()
        assert sorted(r["name"] for r in listed) == ["hit_rate.png", "replay.json", "replay.md"]
        assert {r["folder"] for r in listed} == {0}
        png = client.get("/v1/dashboard/reports/0/hit_rate.png")
        assert png.headers["content-type"] == "image/png" and png.content == PIXEL_PNG
        assert client.get("/v1/dashboard/reports/0/replay.json").json()["strategies"]["live"]["ndcg@10"] == 0.25
        assert client.get("/v1/dashboard/reports/0/replay.md").text.startswith("# Streaming replay")
        for missing in ("0/notes.txt", "1/replay.json", "0/..%2Freplay-report%2Freplay.json", "0/nope.json"):
            assert client.get(f"/v1/dashboard/reports/{missing}").status_code == 404, missing
        assert client.get("/v1/dashboard/reports/x/replay.json").status_code == 422

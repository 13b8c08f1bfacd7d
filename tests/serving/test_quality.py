"""GET /v1/quality and the guard's gauges in /metrics, on a live server with its online trainer."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from freshrec.engine import Engine
from freshrec.serving.app import create_app
from tests.conftest import TrainedStore, wait_for


def test_quality_report_and_metrics_on_a_live_server(server_factory, trained: TrainedStore, tmp_path: Path) -> None:
    server = server_factory(trained.copy_to(tmp_path / "data"), online=True)
    now = time.time()
    items = [i.item_id for i in trained.shop.items]
    bot = [{"user_id": "bot", "item_id": items[k], "type": "view", "ts": now - 100 + k * 0.5} for k in range(60)]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/v1/events", json=bot).json()["accepted"] == 60

        def flagged() -> bool:
            r = client.get("/v1/quality")
            return r.status_code == 200 and r.json()["users"]["flagged"] == 1

        wait_for(flagged, "the trainer to flag the bot")
        report = client.get("/v1/quality").json()
        [user] = report["flagged_users"]
        assert (user["user_id"], user["reason"], user["events_held"]) == ("bot", "burst", 60)
        assert report["events"]["quarantined"] == 60 and report["enabled"] is True
        assert report["type_mix"]["reference"]["view"] > 0
        assert client.get("/v1/quality", params={"reason": "flood"}).json()["flagged_users"] == []
        assert client.get("/v1/quality", params={"limit": 0}).json()["flagged_users"] == []
        metrics = client.get("/metrics").text
        assert 'freshrec_quality_flagged_users{reason="burst"} 1.0' in metrics
        assert 'freshrec_quality_events{decision="quarantined"} 60.0' in metrics
        # the events stay in the log and in live state
        assert len(client.get("/v1/users/bot").json()["sequence"]) == 60


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"limit": -1}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"reason": "bored"}, "reason"),
    ],
)
def test_bad_quality_queries_get_422(trained_engine: Engine, params: dict, reason: str) -> None:
    with TestClient(create_app(trained_engine.settings, trained_engine)) as client:
        r = client.get("/v1/quality", params=params)
        assert r.status_code == 422 and reason in r.json()["detail"]


def test_no_report_yet_is_404(trained_engine: Engine) -> None:
    with TestClient(create_app(trained_engine.settings, trained_engine)) as client:
        r = client.get("/v1/quality")
        assert r.status_code == 404 and "online trainer" in r.json()["detail"]
        (trained_engine.settings.storage.data_dir / "quality.json").write_text("not json")
        assert client.get("/v1/quality").status_code == 404
        assert client.get("/metrics").status_code == 200

"""Cold start over HTTP on a real server: PUT an item, it is recommendable at once; onboarding."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import TrainedStore


def test_put_item_then_recommend_and_onboard(server_factory, trained: TrainedStore, tmp_path: Path) -> None:
    server = server_factory(trained.copy_to(tmp_path / "data"), online=False)
    last = trained.shop.events[-1]
    like = next(it for it in trained.shop.items if it.item_id == last.item_id)
    twin = {
        "item_id": "http-twin",
        "title": f"{like.title} II",
        "text": like.text,
        "categories": like.categories,
    }
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.put("/v1/items", json=[twin]).status_code == 200
        rec = client.get(f"/v1/users/{last.user_id}/recommendations", params={"k": 10}).json()
        assert "http-twin" in [it["item_id"] for it in rec["items"]]
        assert client.get("/v1/items/http-twin/similar", params={"k": 3}).status_code == 200

        bad = client.post("/v1/users/newbie/preferences", json={"categories": ["nope"]})
        assert bad.status_code == 422 and "unknown categories" in bad.text
        assert client.post("/v1/users/newbie/preferences", json={"categories": []}).status_code == 422
        ok = client.post("/v1/users/newbie/preferences", json={"categories": like.categories})
        assert ok.status_code == 200 and ok.json()["categories"] == like.categories
        rec = client.get("/v1/users/newbie/recommendations", params={"k": 5}).json()
        assert rec["source"] == "onboarding"
        assert client.get("/v1/users/newbie").json()["preferences"] == like.categories

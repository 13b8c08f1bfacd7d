"""Cold start on a trained engine: new items from content, new users from trending to personal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from freshrec.engine import Engine, build_engine
from freshrec.errors import InvalidInput
from freshrec.schema import EventIn, ItemIn
from tests.conftest import TrainedStore, make_settings


def _last_user_and_item(trained: TrainedStore) -> tuple[str, ItemIn]:
    last = trained.shop.events[-1]
    items = {it.item_id: it for it in trained.shop.items}
    return last.user_id, items[last.item_id]


def _twin_and_stranger(trained: TrainedStore, like: ItemIn) -> tuple[ItemIn, ItemIn]:
    other = next(it for it in trained.shop.items if not set(it.categories) & set(like.categories))
    twin = ItemIn(
        item_id="new-twin",
        title=f"{like.title} II",
        text=like.text,
        categories=like.categories,
        attributes=like.attributes,
    )
    stranger = ItemIn(item_id="new-stranger", title=f"{other.title} II", text=other.text, categories=other.categories)
    return twin, stranger


def test_new_item_with_similar_content_is_recommended_without_retrain(trained_engine: Engine, trained) -> None:
    user, recent = _last_user_and_item(trained)
    version = trained_engine.model_info().version
    twin, stranger = _twin_and_stranger(trained, recent)
    trained_engine.upsert_items([twin, stranger])
    rec = trained_engine.recommend(user, k=10)
    ids = [it.item_id for it in rec.items]
    assert rec.source == "model" and rec.model_version == version  # same version: no retrain happened
    assert "new-twin" in ids
    twin_at = ids.index("new-twin")
    assert "matched by content" in rec.items[twin_at].reason
    assert "new-stranger" not in ids[:twin_at]  # unrelated content never ranks above it
    # the model has no row for it: it is scored through the content mapping
    idx = trained_engine.catalog.internal_id("new-twin", create=False)
    serving = trained_engine.recommender.serving
    assert serving.rows(np.array([idx]))[0] == 0 and idx in serving.cold.catalog_idx
    similar = trained_engine.similar("new-twin", k=5)
    assert recent.item_id in [it.item_id for it in similar.items]


def test_unavailable_and_seen_cold_items_are_not_recommended(trained_engine: Engine, trained) -> None:
    user, recent = _last_user_and_item(trained)
    twin, _ = _twin_and_stranger(trained, recent)
    trained_engine.upsert_items([twin])
    trained_engine.upsert_items([ItemIn(item_id="new-twin", available=False)])
    assert "new-twin" not in [it.item_id for it in trained_engine.recommend(user, k=50).items]
    trained_engine.upsert_items([ItemIn(item_id="new-twin", available=True)])
    trained_engine.ingest([EventIn(user_id=user, item_id="new-twin", type="view")])
    assert "new-twin" not in [it.item_id for it in trained_engine.recommend(user, k=50).items]


def test_first_event_turns_trending_into_personal(trained_engine: Engine, trained) -> None:
    before = trained_engine.recommend("brand-new-user", k=10)
    assert before.source == "trending"
    camping = next(it for it in trained.shop.items if "camping" in it.categories)
    trained_engine.ingest([EventIn(user_id="brand-new-user", item_id=camping.item_id, type="view")])
    after = trained_engine.recommend("brand-new-user", k=10)
    assert after.source == "model" and after.sequence_length == 1
    assert [it.item_id for it in after.items] != [it.item_id for it in before.items]


def test_onboarding_categories_until_the_first_event(trained_engine: Engine, trained) -> None:
    with pytest.raises(InvalidInput, match="unknown categories"):
        trained_engine.set_preferences("newbie", ["no-such-category"])
    trained_engine.set_preferences("newbie", ["camping"])
    rec = trained_engine.recommend("newbie", k=5)
    assert rec.source == "onboarding"
    cats = {it.item_id: it.categories for it in trained.shop.items}
    assert all("camping" in cats[it.item_id] for it in rec.items)
    assert trained_engine.user_state("newbie").preferences == ["camping"]
    first = rec.items[0].item_id
    trained_engine.ingest([EventIn(user_id="newbie", item_id=first, type="click")])
    assert trained_engine.recommend("newbie", k=5).source == "model"
    trained_engine.delete_user("newbie")
    assert trained_engine.preferences.get("newbie") is None


def test_exploration_slot_goes_to_a_little_seen_item(trained, tmp_path: Path) -> None:
    data_dir = trained.copy_to(tmp_path / "data")
    user, recent = _last_user_and_item(trained)
    lists = {}
    for slots in (0, 1):
        eng = build_engine(make_settings(data_dir, content={"exploration_slots": slots}))
        try:
            _, stranger = _twin_and_stranger(trained, recent)
            eng.upsert_items([stranger])
            lists[slots] = eng.recommend(user, k=10).items
        finally:
            eng.close()
    assert "new-stranger" not in [it.item_id for it in lists[0]]
    assert lists[1][-1].item_id == "new-stranger" and lists[1][-1].reason.startswith("exploration slot")
    assert [it.item_id for it in lists[1][:9]] == [it.item_id for it in lists[0][:9]]


def test_online_trainer_initialises_new_rows_from_content(trained_engine: Engine, trained) -> None:
    from freshrec.online.trainer import OnlineTrainer

    _user, recent = _last_user_and_item(trained)
    twin, _ = _twin_and_stranger(trained, recent)
    trained_engine.upsert_items([twin, ItemIn(item_id="bare-new")])
    trainer = OnlineTrainer(trained_engine.stores)
    idx = trained_engine.catalog.internal_ids(["new-twin", "bare-new"], create=False)
    rows = trainer.growth.content_rows(trainer.learner)(idx)
    assert rows is not None and bool(rows[0].isfinite().all()) and bool(rows[1].isnan().all())
    # the mapped row points where the twin's learned row points
    table = trainer.model.item_emb.weight.detach()
    src = trainer.learner.rows(np.array(trained_engine.catalog.internal_ids([recent.item_id])))[0]
    cos = float(rows[0] @ table[src] / (rows[0].norm() * table[src].norm()))
    assert cos > 0.3


def test_rows_that_never_trained_are_served_from_content(trained_engine: Engine, trained) -> None:
    import dataclasses

    from freshrec.serving_model import ServingModel

    _user, recent = _last_user_and_item(trained)
    loaded = trained_engine.registry.load()
    assert isinstance(loaded.meta.get("untrained_items"), list)  # recorded at publish
    # pretend the user's last item never occurred in training: its row only ever lost the softmax
    meta = {**loaded.meta, "untrained_items": [recent.item_id]}
    serving = ServingModel(dataclasses.replace(loaded, meta=meta), trained_engine.catalog, trained_engine.types)
    serving.attach_content(trained_engine.content)
    idx = trained_engine.catalog.internal_id(recent.item_id, create=False)
    row = int(serving.rows(np.array([idx]))[0])
    assert serving.unlearned[row] and not bool(serving.allowed(trained_engine.catalog)[row])
    assert idx in serving.cold.catalog_idx  # scored through its content instead


def test_a_fine_tuned_child_version_reuses_the_content_mapping(trained_engine: Engine, trained, monkeypatch) -> None:
    """Hot swaps to the online trainer's versions skip the refit; anything else (or an old mapping) refits."""
    _user, recent = _last_user_and_item(trained)
    twin, _ = _twin_and_stranger(trained, recent)
    trained_engine.upsert_items([twin])
    first = trained_engine.recommender.serving
    assert first.mapping is not None
    loaded = trained_engine.registry.load()

    def publish(parent: str | None) -> str:
        with torch.no_grad():
            loaded.model.item_emb.weight[1:] *= 1.01
        return trained_engine.registry.publish(
            loaded.model, loaded.item_ids, loaded.event_types, {"kind": "online"}, parent=parent
        )

    child = publish(first.version)
    trained_engine.load_model(child)
    second = trained_engine.recommender.serving
    assert second.version == child and second.mapping is first.mapping
    twin_idx = trained_engine.catalog.internal_id("new-twin", create=False)
    assert twin_idx in second.cold.catalog_idx  # cold items are mapped for the new version all the same
    assert recent.item_id in [it.item_id for it in trained_engine.similar("new-twin", k=5).items]

    trained_engine.load_model(publish(parent=None))  # not fine-tuned from the one served: refit
    third = trained_engine.recommender.serving
    assert third.mapping is not None and third.mapping is not second.mapping

    monkeypatch.setattr("freshrec.serving_model.MAPPING_REUSE_S", 0.0)  # every mapping counts as too old
    trained_engine.load_model(publish(third.version))
    assert trained_engine.recommender.serving.mapping is not third.mapping

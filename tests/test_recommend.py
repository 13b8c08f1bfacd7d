"""The hot path: live sequence -> model -> filters -> reasons; trending fallback."""

import numpy as np
import pytest
import torch

from freshrec.datasets.synthetic import generate_shop
from freshrec.diversity import intra_list_diversity
from freshrec.engine import Engine, build_engine
from freshrec.errors import InvalidInput
from freshrec.schema import EventIn, ItemIn
from tests.conftest import TrainedStore, make_settings


def test_an_event_changes_the_next_list(trained_engine: Engine, trained: TrainedStore) -> None:
    user = trained.shop.events[-1].user_id
    before = trained_engine.recommend(user, 10)
    assert before.source == "model" and len(before.items) == 10
    target = before.items[0].item_id
    trained_engine.ingest([EventIn(user_id=user, item_id=target, type="view")])
    after = trained_engine.recommend(user, 10)
    assert target not in [i.item_id for i in after.items]  # seen items are excluded
    state = trained_engine.user_state(user)
    assert state.sequence[-1].item_id == target  # and the model read a sequence ending with it
    assert after.items != before.items


def test_exclude_seen_false_and_unavailable_items(trained_engine: Engine, trained: TrainedStore) -> None:
    user = trained.shop.events[-1].user_id
    seen = {e.item_id for e in trained.shop.events if e.user_id == user}
    everything = trained_engine.recommend(user, 100, exclude_seen=False)
    assert seen & {i.item_id for i in everything.items}
    filtered = trained_engine.recommend(user, 100)
    assert not seen & {i.item_id for i in filtered.items}
    hidden = filtered.items[0].item_id
    trained_engine.upsert_items([ItemIn(item_id=hidden, available=False)])
    assert hidden not in [i.item_id for i in trained_engine.recommend(user, 100).items]
    assert hidden not in [i.item_id for i in trained_engine.recommend("stranger", 100).items]
    assert hidden not in [i.item_id for i in trained_engine.similar(filtered.items[1].item_id, 100).items]


def test_unknown_user_gets_trending_then_personal_after_one_event(trained_engine: Engine) -> None:
    first = trained_engine.recommend("brand-new", 5)
    assert first.source == "trending" and all(i.reason == "trending" for i in first.items)
    assert [i.score for i in first.items] == sorted((i.score for i in first.items), reverse=True)
    trained_engine.ingest([EventIn(user_id="brand-new", item_id=first.items[0].item_id, type="click")])
    second = trained_engine.recommend("brand-new", 5)
    assert second.source == "model" and second.sequence_length == 1
    assert all(i.reason.startswith("because you clicked") for i in second.items)


def test_user_with_only_unknown_items_falls_back_to_trending(trained_engine: Engine) -> None:
    trained_engine.ingest([EventIn(user_id="u-new-item", item_id="never-trained-on", type="view")])
    result = trained_engine.recommend("u-new-item", 5)
    assert result.source == "trending"
    assert "never-trained-on" not in [i.item_id for i in result.items]


def test_reasons_name_a_recent_item(trained_engine: Engine, trained: TrainedStore) -> None:
    user = trained.shop.events[-1].user_id
    titles = {it.item_id: it.title for it in trained.shop.items}
    recent = {titles[e.item_id] for e in trained.shop.events if e.user_id == user}
    for item in trained_engine.recommend(user, 5).items:
        assert any(f"'{t}'" in item.reason for t in recent), item.reason
        assert item.title == titles[item.item_id]


def test_similar_items(trained_engine: Engine, trained: TrainedStore) -> None:
    item = trained.shop.items[0].item_id
    sim = trained_engine.similar(item, 5)
    assert len(sim.items) == 5 and item not in [i.item_id for i in sim.items]
    assert [i.score for i in sim.items] == sorted((i.score for i in sim.items), reverse=True)
    assert all(-1.0001 <= i.score <= 1.0001 for i in sim.items)


def test_diversity_reranks_the_list_towards_dissimilar_items(trained_engine: Engine, trained: TrainedStore) -> None:
    serving = trained_engine.recommender.serving
    users = sorted({e.user_id for e in trained.shop.events})[:20]

    def spread(items: list[str]) -> float:
        idx = trained_engine.catalog.internal_ids(items, create=False)
        return intra_list_diversity(serving.unit_of(np.asarray(idx)))

    plain = [trained_engine.recommend(u, 10) for u in users]
    diverse = [trained_engine.recommend(u, 10, diversity=0.7) for u in users]
    for a, b in zip(plain, diverse, strict=True):
        assert len(b.items) == 10 and b.items[0].item_id == a.items[0].item_id  # the best item stays first
    before = np.mean([spread([i.item_id for i in r.items]) for r in plain])
    after = np.mean([spread([i.item_id for i in r.items]) for r in diverse])
    assert after > before
    assert [i.item_id for i in trained_engine.recommend(users[0], 10, diversity=0.0).items] == [
        i.item_id for i in plain[0].items
    ]
    with pytest.raises(InvalidInput, match="diversity"):
        trained_engine.recommend(users[0], 10, diversity=1.5)


def test_objectives_rank_for_the_next_interaction_or_the_next_conversion(
    trained_engine: Engine, trained: TrainedStore
) -> None:
    serving = trained_engine.recommender.serving
    # the shop has purchases, so the model learned the conversion head and reports per-objective figures
    assert serving.objectives == ("engagement", "blend", "conversion")
    assert trained.metrics["objectives"]["conversion"]["conversions"]["n"] > 0
    users = sorted({e.user_id for e in trained.shop.events})[:40]
    lists = {o: [trained_engine.recommend(u, 10, objective=o) for u in users] for o in ("engagement", "conversion")}
    assert {r.objective for r in lists["engagement"]} == {"engagement"}
    assert {r.objective for r in lists["conversion"]} == {"conversion"}
    assert trained_engine.recommend(users[0], 10).objective == "engagement"  # serving.objective's default

    # The shop's items differ in how often a carted one is bought; ranking for conversion favours the
    # items that are bought.
    bought = trained.shop.purchase_probability

    def mean_bought(results: list) -> float:
        return float(np.mean([bought[i.item_id] for r in results for i in r.items]))

    assert mean_bought(lists["conversion"]) > mean_bought(lists["engagement"])
    with pytest.raises(InvalidInput, match="objective"):
        trained_engine.recommend(users[0], 10, objective="revenue")


def test_a_model_without_conversions_ranks_for_engagement(tmp_path) -> None:
    from freshrec.pipeline import train_and_publish

    shop = generate_shop(n_users=40, n_items=30, n_categories=3, seed=3)
    eng = build_engine(make_settings(tmp_path / "data", events={"conversion_types": []}, train={"epochs": 2}))
    try:
        eng.upsert_items(shop.items)
        for i in range(0, len(shop.events), 1000):
            eng.ingest(shop.events[i : i + 1000])
        report = train_and_publish(eng.stores, progress=False)
        eng.load_model()
        assert "objectives" not in report.metrics and eng.recommender.serving.objectives == ("engagement",)
        user = shop.events[-1].user_id
        answer = eng.recommend(user, 5, objective="conversion")
        assert answer.objective == "engagement" and answer.source == "model"
        assert [i.item_id for i in answer.items] == [i.item_id for i in eng.recommend(user, 5).items]
    finally:
        eng.close()


def test_serving_model_holds_one_copy_of_the_item_table(trained_engine: Engine) -> None:
    serving = trained_engine.recommender.serving
    weights = serving.model.item_emb.weight
    ptr = weights.untyped_storage().data_ptr()
    assert serving.table.untyped_storage().data_ptr() == ptr
    assert serving.index.table.untyped_storage().data_ptr() == ptr
    # no normalised copy: unit rows and cosines come from the table and its [N + 1] norms
    assert serving.norms.shape == (serving.num_rows + 1,)
    rows = np.arange(serving.num_rows + 1)
    unit = torch.nn.functional.normalize(weights.detach(), dim=1)
    assert np.allclose(serving.unit_rows(rows), unit.numpy(), atol=1e-6)
    assert torch.allclose(serving.cosine(unit[3]), unit @ unit[3], atol=1e-5)

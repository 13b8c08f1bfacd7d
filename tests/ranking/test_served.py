"""The served pipeline end to end: candidates from every live source, ordered by the version's ranker."""

from __future__ import annotations

import numpy as np
import pytest

from freshrec.engine import Engine, build_engine
from freshrec.ranking.features import FEATURES
from freshrec.ranking.ranker import Ranker
from freshrec.schema import EventIn, ItemIn
from tests.conftest import TrainedStore, make_settings


@pytest.fixture
def served_engine(trained: TrainedStore, tmp_path) -> Engine:
    """An engine on a copy of the trained store serving the ranker (``serving.ranker`` on)."""
    engine = build_engine(make_settings(trained.copy_to(tmp_path / "served"), serving={"ranker": True}))
    yield engine
    engine.close()


def co_occurrence_ranker() -> Ranker:
    """A ranker fitted on requests where the chosen item is the one with the strongest co-occurrence."""
    rng = np.random.default_rng(0)
    groups = [30] * 300
    x = rng.random((sum(groups), len(FEATURES))).astype(np.float32)
    share = x[:, FEATURES.index("cooc_share")].reshape(len(groups), -1)
    y = (share == share.max(axis=1, keepdims=True)).astype(np.float32).ravel()
    return Ranker.fit(x, y, groups, seed=0)[0]


def test_by_default_the_transformer_ranks_alone(trained_engine: Engine, trained: TrainedStore) -> None:
    user = trained.shop.events[-1].user_id
    assert all(it.sources == ["model"] for it in trained_engine.recommend(user, 10).items)


def top(engine: Engine, user: str, k: int = 10) -> list[str]:
    return [it.item_id for it in engine.recommend(user, k).items]


def test_the_trained_version_has_a_ranker_and_lists_name_their_sources(trained: TrainedStore, served_engine: Engine):
    meta = served_engine.registry.meta(trained.version)["ranker"]
    assert meta["requests"] >= 50 and 0 < meta["candidate_recall"] <= 1
    assert served_engine.recommender.serving.ranker is not None
    user = trained.shop.events[-1].user_id
    items = served_engine.recommend(user, 20).items
    assert all(it.sources and set(it.sources) <= {"model", "co-occurrence", "session-knn", "trending"} for it in items)
    assert any(set(it.sources) - {"model"} for it in items)  # live sources reach the list, not only the model


def test_a_pair_other_users_just_saw_together_surfaces_within_one_event_without_retraining(
    trained: TrainedStore, served_engine: Engine
) -> None:
    engine = served_engine
    # the mechanism under test is live state -> candidates -> features -> ranker; the fixture's own ranker
    # learned from a few hundred requests, so one with a known preference stands in for it
    engine.recommender.serving.ranker = co_occurrence_ranker()
    anchor = trained.shop.items[7].item_id
    engine.upsert_items([ItemIn(item_id="pair-new")])  # no content, no events: the model cannot know it
    assert "pair-new" not in top(engine, "probe-before", 10)
    t0 = trained.shop.end_ts + 100
    pairs = []
    for u in range(30):
        pairs += [
            EventIn(user_id=f"pair-{u}", item_id=anchor, type="view", ts=t0 + 10 * u),
            EventIn(user_id=f"pair-{u}", item_id="pair-new", type="view", ts=t0 + 10 * u + 5),
        ]
    engine.ingest(pairs)
    version = engine.recommender.serving.version
    engine.ingest([EventIn(user_id="probe", item_id=anchor, type="view", ts=t0 + 1000)])
    listed = engine.recommend("probe", 10)
    assert listed.model_version == version  # no new version: live state alone did it
    found = [it for it in listed.items if it.item_id == "pair-new"]
    assert found and "co-occurrence" in found[0].sources


def test_the_item_graph_is_kept_only_for_the_served_pipeline(
    trained: TrainedStore, trained_engine: Engine, served_engine: Engine
) -> None:
    first = trained_engine.catalog.internal_id(trained.shop.events[0].item_id, create=False)
    assert trained_engine.state.followers([first]) == [{}]  # serving.ranker off: no graph, no memory for it
    assert served_engine.state.followers([first])[0]  # on: rebuilt from the log at start

"""The trained fixture exercises the whole pipeline: log -> sequences -> fit -> evaluate -> publish."""

from freshrec.engine import build_engine
from freshrec.model.registry import ModelRegistry
from freshrec.pipeline import evaluate_version
from freshrec.schema import EventIn
from tests.conftest import TrainedStore, make_settings


def test_model_beats_popularity_by_a_clear_margin(trained: TrainedStore) -> None:
    model, pop = trained.metrics["model"], trained.metrics["popularity"]
    assert model["ndcg@10"] > 2 * pop["ndcg@10"]
    assert model["hr@10"] > pop["hr@10"] + 0.1
    assert model["n"] == pop["n"] > 300


def test_published_version_records_data_range_and_metrics(trained: TrainedStore) -> None:
    meta = ModelRegistry(trained.data_dir / "models").meta(trained.version)
    assert meta["data"]["events"] == len(trained.shop.events)
    assert meta["data"]["max_offset"] == len(trained.shop.events)
    assert meta["holdout"] == "test"
    assert meta["metrics"]["model"]["ndcg@10"] == trained.metrics["model"]["ndcg@10"]
    assert meta["config"]["num_items"] == len(trained.shop.items)
    assert meta["training"]["epochs"] >= 1 and meta["training"]["history"]


def test_training_opens_the_durable_stores_only(trained: TrainedStore, tmp_path) -> None:
    """`freshrec train` reads the log through the stores; no live state is rebuilt to train."""
    from freshrec.pipeline import train_and_publish
    from freshrec.stores import open_stores

    stores = open_stores(make_settings(trained.copy_to(tmp_path / "data"), train={"epochs": 1}))
    try:
        report = train_and_publish(stores, holdout="valid", progress=False)
        assert report.version == stores.registry.current() != trained.version
        assert stores.registry.meta(report.version)["offsets"]["to"] == len(trained.shop.events)
    finally:
        stores.close()


def test_evaluate_version_reproduces_the_published_metrics(trained: TrainedStore, tmp_path) -> None:
    engine = build_engine(make_settings(trained.copy_to(tmp_path / "data")), load_model=False)
    try:
        # events after the model's data range must not leak into its evaluation
        late = [EventIn(user_id=e.user_id, item_id=e.item_id, type="view") for e in trained.shop.events[:5]]
        assert engine.ingest(late).accepted == 5
        result = evaluate_version(engine.stores)
    finally:
        engine.close()
    assert abs(result["model"]["ndcg@10"] - trained.metrics["model"]["ndcg@10"]) < 1e-4
    assert result["popularity"]["hr@10"] == trained.metrics["popularity"]["hr@10"]

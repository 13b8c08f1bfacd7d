"""The online trainer refits the ranker from the stream's requests and publishes it through its gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from freshrec.engine import Engine, build_engine
from freshrec.model.gate import GateLog
from freshrec.online import ranking
from freshrec.online.trainer import OnlineTrainer
from freshrec.schema import EventIn
from tests.conftest import TrainedStore, make_settings

ONLINE = {"publish_interval_s": 0, "micro_batch_events": 1000, "gate_tolerance": 0.05}


def engine_with_ranker(trained: TrainedStore, tmp_path: Path) -> Engine:
    settings = make_settings(trained.copy_to(tmp_path / "data"), online=ONLINE, serving={"ranker": True})
    return build_engine(settings)


def stream_again(trained: TrainedStore, engine: Engine, users: int = 200) -> int:
    """The first ``users`` shoppers' histories again, as new shoppers after the log's end: the same tastes."""
    chosen = {e.user_id for e in trained.shop.events[:5000]}
    chosen = set(sorted(chosen)[:users])
    shift = trained.shop.end_ts - trained.shop.start_ts + 100
    events = [
        EventIn(user_id=f"again-{e.user_id}", item_id=e.item_id, type=e.type, ts=e.ts + shift)
        for e in trained.shop.events
        if e.user_id in chosen
    ]
    for i in range(0, len(events), 1000):
        engine.ingest(events[i : i + 1000])
    return len(events)


def test_a_ranker_refitted_on_stream_requests_is_published_through_its_gate(
    trained: TrainedStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ranking, "REFIT_EVERY", 300)
    engine = engine_with_ranker(trained, tmp_path)
    try:
        trainer = OnlineTrainer(engine.stores)
        assert trainer.ranking is not None
        cut_ranker = engine.registry.ranker(engine.registry.current())
        stream_again(trained, engine)
        decisions = []
        while (report := trainer.poll(force=True)) is not None:
            assert report.ranker_requests <= ranking.REQUESTS_PER_BATCH
            if report.ranker_decision is not None:
                decisions.append(report.ranker_decision)
        assert decisions, "enough requests for a refit"
        accepted = [d for d in decisions if d.accepted]
        assert accepted, [d.reason for d in decisions]
        version = accepted[-1].candidate_version
        meta = engine.registry.meta(version)
        assert meta["kind"] == "ranker" and meta["ranker"]["fitted_from"] == "stream requests"
        assert meta["ranker"]["requests"] >= ranking.MIN_FIT_REQUESTS
        # same weights as its parent, a new ranker
        parent = engine.registry.load(meta["parent"])
        assert all(
            (a == b).all()
            for a, b in zip(
                engine.registry.load(version).model.state_dict().values(),
                parent.model.state_dict().values(),
                strict=True,
            )
        )
        assert engine.registry.ranker(version) not in (None, cut_ranker)
        logged = [d for d in GateLog(engine.registry.root).read() if d["context"].get("kind") == "ranker"]
        assert len(logged) == len(decisions)
        assert logged[-1]["figures"]["newest requests"]["candidate"]["ndcg@10"] >= 0
        # the trainer stays on its lineage: the ranker's version is its base, no restart from outside
        assert trainer.state.base_version in {d.candidate_version for d in accepted} | {engine.registry.current()}
        [first_offset] = trainer.state.committed
        engine.ingest([EventIn(user_id="again-late", item_id=trained.shop.items[0].item_id, type="view")])
        report = trainer.poll(force=True)
        assert report is not None and report.first_offset == first_offset + 1
    finally:
        engine.close()


def test_a_ranker_fitted_on_scrambled_choices_is_rejected(
    trained: TrainedStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ranking, "REFIT_EVERY", 10**9)  # fit only when the test asks
    engine = engine_with_ranker(trained, tmp_path)
    try:
        trainer = OnlineTrainer(engine.stores)
        stream_again(trained, engine)
        while trainer.poll(force=True) is not None:
            pass
        online = trainer.ranking
        assert online is not None and len(online.requests) >= ranking.MIN_FIT_REQUESTS / (1 - ranking.GATE_SHARE)
        # every request the ranker is fitted on (all but the newest) labels a random candidate as chosen
        rng = np.random.default_rng(0)
        n_gate = int(len(online.requests) * ranking.GATE_SHARE)
        for r in list(online.requests)[:-n_gate]:
            r.target = int(rng.integers(len(r.candidates)))
        before = engine.registry.versions()
        monkeypatch.setattr(ranking, "REFIT_EVERY", 1)
        online.fresh = 1
        decision = online.refit_if_due()
        assert decision is not None and not decision.accepted, decision.reason
        assert "worse than current" in decision.reason
        assert engine.registry.versions() == before
    finally:
        engine.close()


def test_the_trainer_keeps_no_ranker_state_while_serving_does_not_use_it(trained: TrainedStore, tmp_path: Path) -> None:
    engine = build_engine(make_settings(trained.copy_to(tmp_path / "data"), online=ONLINE))
    try:
        assert OnlineTrainer(engine.stores).ranking is None
    finally:
        engine.close()

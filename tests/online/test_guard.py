"""The online trainer with the data-quality guard: quarantined users never become training examples."""

from __future__ import annotations

from pathlib import Path

from freshrec.engine import Engine, build_engine
from freshrec.online.trainer import OnlineTrainer
from freshrec.quality.report import QUALITY_REPORT, read_report
from freshrec.schema import EventIn
from tests.conftest import TrainedStore, make_settings

ONLINE = {"publish_interval_s": 0, "micro_batch_events": 100, "gate_tolerance": 0.5}


def stream(trained: TrainedStore, engine: Engine) -> str:
    """A scraper clicking 150 items at one a second, mixed with a real user's next session; returns that user."""
    items = [i.item_id for i in trained.shop.items]
    human = trained.shop.events[-1].user_id
    t0 = trained.shop.end_ts + 100
    events = [EventIn(user_id="bot", item_id=items[k % len(items)], type="view", ts=t0 + k) for k in range(150)]
    events += [EventIn(user_id=human, item_id=items[k], type="view", ts=t0 + 40 * k) for k in range(5)]
    engine.ingest(sorted(events, key=lambda e: e.ts))
    return human


def drain(trainer: OnlineTrainer) -> list:
    reports = []
    while (report := trainer.poll(force=True)) is not None:
        reports.append(report)
    return reports


def test_quarantined_users_never_become_training_examples(trained: TrainedStore, tmp_path: Path) -> None:
    data_dir = trained.copy_to(tmp_path / "data")
    engine = build_engine(make_settings(data_dir, online=ONLINE))
    try:
        trainer = OnlineTrainer(engine.stores)
        assert read_report(data_dir / QUALITY_REPORT)["users"]["flagged"] == 0  # the shop's users are real
        human = stream(trained, engine)
        reports = drain(trainer)
        assert sum(r.events for r in reports) == 155
        flag = trainer.guard.flags["bot"]
        assert flag.reason == "burst"
        # the bot's first 20 events came before the burst showed, in the same micro-batch: none is trained
        assert sum(r.held_out for r in reports) == 150 == flag.events_held
        assert trainer.sequences.get("bot") is None and "bot" not in trainer.buffer.items
        new_items = engine.catalog.internal_ids([i.item_id for i in trained.shop.items[:5]])
        assert trainer.sequences.get(human).item_array()[-5:].tolist() == new_items  # her session is trained on
        # the log and live serving state keep every event
        assert engine.event_log.user_events("bot") and engine.state.get("bot") is not None
        report = read_report(data_dir / QUALITY_REPORT)
        assert report["users"]["flagged"] == 1 and report["flagged_users"][0]["user_id"] == "bot"
        assert report["events"]["quarantined"] == 150
        # a restarted trainer rebuilds the same verdicts from the log
        again = OnlineTrainer(engine.stores)
        assert again.guard.flags["bot"].reason == "burst" and again.guard.flags["bot"].since_ts == flag.since_ts
        assert again.sequences.get("bot") is None and "bot" not in again.buffer.items
    finally:
        engine.close()


def test_an_unguarded_trainer_trains_on_the_bot(trained: TrainedStore, tmp_path: Path) -> None:
    data_dir = trained.copy_to(tmp_path / "data")
    engine = build_engine(make_settings(data_dir, online=ONLINE, quality={"enabled": False}))
    try:
        trainer = OnlineTrainer(engine.stores)
        stream(trained, engine)
        reports = drain(trainer)
        assert trainer.guard is None and sum(r.held_out for r in reports) == 0
        assert trainer.sequences.get("bot") is not None
        assert read_report(data_dir / QUALITY_REPORT)["enabled"] is False
    finally:
        engine.close()


def test_erasing_a_flagged_user_drops_its_flag(trained: TrainedStore, tmp_path: Path) -> None:
    data_dir = trained.copy_to(tmp_path / "data")
    engine = build_engine(make_settings(data_dir, online=ONLINE))
    try:
        trainer = OnlineTrainer(engine.stores)
        stream(trained, engine)
        drain(trainer)
        assert trainer.guard.quarantined("bot")
        engine.delete_user("bot")
        trainer.poll(force=True)
        assert not trainer.guard.quarantined("bot") and "bot" not in trainer.guard.users
    finally:
        engine.close()

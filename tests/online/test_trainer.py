"""The online trainer on a real store: growth, lineage, the gate, crash recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import torch

from freshrec.engine import Engine, build_engine
from freshrec.events.base import iter_events, iter_pages, open_event_log
from freshrec.metrics import summarize
from freshrec.model.gate import Anchor, GateLog, holdout_ranks
from freshrec.model.losses import FullSoftmaxCE
from freshrec.model.sasrec import Dropout, SASRec, SASRecConfig
from freshrec.model.train import make_optimizer, train_step
from freshrec.online.batches import micro_batch, pack_rows
from freshrec.online.checkpoint import CheckpointStore
from freshrec.online.growth import initial_rows
from freshrec.online.learner import grow
from freshrec.online.publisher import RESYNC_AFTER
from freshrec.online.trainer import TRAINER_GROUP, OnlineTrainer
from freshrec.position import base, local, partition_of
from freshrec.schema import EventIn, ItemIn
from tests.conftest import TrainedStore, make_settings, wait_for
from tests.servers import KafkaBroker

ONLINE = {"publish_interval_s": 0, "micro_batch_events": 400, "gate_tolerance": 0.5}


def engine_on(trained: TrainedStore, tmp_path: Path, **online: object) -> Engine:
    settings = make_settings(trained.copy_to(tmp_path / "data"), online={**ONLINE, **online})
    return build_engine(settings)


def stream_with_new_item(
    trained: TrainedStore, engine: Engine, users: int = 200, new_item: str = "sku-new", upsert: bool = True
) -> tuple[str, str]:
    """New users who view a known item X and then a brand-new item: a shifted interest."""
    anchor = trained.shop.items[5].item_id
    if upsert:
        engine.upsert_items(
            [ItemIn(item_id=new_item, title="Brand new", categories=[trained.shop.category_of[anchor]])]
        )
    t0 = trained.shop.end_ts + 100
    events = []
    for u in range(users):
        events += [
            EventIn(user_id=f"fresh-{u}", item_id=anchor, type="view", ts=t0 + 10 * u),
            EventIn(user_id=f"fresh-{u}", item_id=new_item, type="click", ts=t0 + 10 * u + 5),
        ]
    for i in range(0, len(events), 1000):
        engine.ingest(events[i : i + 1000])
    return anchor, new_item


def test_growth_keeps_existing_rows_and_optimizer_state() -> None:
    model = SASRec(SASRecConfig(num_items=5, dim=8, heads=1, layers=1, max_len=4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.item_emb.weight.sum().backward()
    opt.step()
    before = model.item_emb.weight.detach().clone()
    grow(model, opt, torch.ones(2, 8))
    assert torch.equal(model.item_emb.weight[:6], before)
    assert model.item_emb.weight in [p for g in opt.param_groups for p in g["params"]]
    assert opt.state[model.item_emb.weight]["exp_avg"].shape == (8, 8)
    model.item_emb.weight.sum().backward()
    opt.step()  # training continues on the grown table


def test_growth_extends_the_conversion_head_with_the_average_item() -> None:
    model = SASRec(SASRecConfig(num_items=3, dim=8, heads=1, layers=1, max_len=4, conversion_types=(2,)))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with torch.no_grad():
        model.conversion.weight[1:, 0] = torch.tensor([1.0, 2.0, 3.0])
    (model.item_emb.weight.sum() + model.conversion.weight.sum()).backward()
    opt.step()
    before = model.conversion.weight.detach().clone()
    grow(model, opt, torch.ones(2, 8))
    assert model.conversion.weight.shape == (6, 1) and model.config.num_items == 5
    assert torch.equal(model.conversion.weight[:4], before)
    assert torch.allclose(model.conversion.weight[4:, 0], before[1:, 0].mean())
    params = [p for g in opt.param_groups for p in g["params"]]
    assert any(p is model.conversion.weight for p in params)
    assert opt.state[model.conversion.weight]["exp_avg"].shape == (6, 1)
    (model.item_emb.weight.sum() + model.conversion.weight.sum()).backward()
    opt.step()


def test_new_rows_score_like_the_median_item_on_average_but_high_where_chosen() -> None:
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=40, dim=8, heads=1, layers=1, max_len=4))
    common = torch.randn(8)
    users = common + 0.3 * torch.randn(200, 8)  # user vectors share a direction, as trained ones do
    taste = torch.randn(8)
    choosers = common + taste + 0.3 * torch.randn(10, 8)  # the item's choosers share a taste of their own
    rows, how = initial_rows(model, [41], {41: choosers}, users=users)
    known = model.item_vectors().detach()
    assert how == ["co-occurrence"]
    assert torch.isclose((users @ rows[0]).mean(), (users @ known.T).mean(0).median(), atol=1e-4)
    raw, _ = initial_rows(model, [41], {41: choosers})
    assert (users @ raw[0]).mean() > (users @ rows[0]).mean()  # uncalibrated: above the median for all
    # the choosers still rank it above the typical item
    assert (choosers @ rows[0]).mean() > (choosers @ known.T).median(dim=1).values.mean()


def test_new_item_becomes_recommendable_with_lineage(trained: TrainedStore, tmp_path: Path) -> None:
    engine = engine_on(trained, tmp_path)
    try:
        base_rows = engine.registry.load().model.item_emb.weight.detach().clone()
        first = engine.event_log.ends()[0] + 1
        anchor, new_item = stream_with_new_item(trained, engine)
        trainer = OnlineTrainer(engine.stores)
        reports = []
        while (report := trainer.poll(force=True)) is not None:
            reports.append(report)
        # a final batch so the last trained events are judged and published
        engine.ingest([EventIn(user_id="late", item_id=anchor, type="view")])
        reports.append(trainer.poll(force=True))
        assert sum(r.new_items for r in reports) == 1
        assert trainer.item_ids[-1] == new_item and trainer.model.num_items == len(trained.shop.items) + 1
        # published after a batch, or in the lull when the log had nothing new
        published = [v["version"] for v in engine.registry.history() if v.get("kind") == "online"]
        assert published, [r.decision.reason for r in reports if r.decision]
        meta = engine.registry.meta(published[-1])
        assert meta["kind"] == "online" and meta["parent"] is not None
        assert meta["offsets"]["to"] >= engine.event_log.ends()[0] - 1
        history = engine.registry.history()
        assert history[0]["offsets"]["to"] == first - 1  # the trained fixture's version
        covered = [o for lo, hi in trainer.state.trained_ranges for o in range(lo, hi + 1)]
        assert covered == list(range(first, engine.event_log.ends()[0] + 1))
        loaded = engine.registry.load(published[-1])
        assert loaded.item_ids[-1] == new_item and loaded.model.item_emb.weight.shape[0] == base_rows.shape[0] + 1
        assert engine.refresh_model()
        engine.ingest([EventIn(user_id="probe", item_id=anchor, type="view")])
        assert new_item in [i.item_id for i in engine.recommend("probe", 10).items]
    finally:
        engine.close()


def test_a_catalogue_item_without_training_events_gets_its_row_rebuilt_on_first_events(
    trained: TrainedStore, tmp_path: Path
) -> None:
    from freshrec.pipeline import train_and_publish

    # a short base training, so the rebuilt row has room to be learnt from the test's stream
    settings = make_settings(trained.copy_to(tmp_path / "data"), online=ONLINE, train={"epochs": 3})
    engine = build_engine(settings)
    try:
        anchor = trained.shop.items[5].item_id
        item = ItemIn(item_id="sku-unsold", title="Brand new", categories=[trained.shop.category_of[anchor]])
        engine.upsert_items([item])
        version = train_and_publish(engine.stores, progress=False).version  # the item has a row that never trained
        assert "sku-unsold" in engine.registry.meta(version)["untrained_items"]
        base = engine.registry.load(version)
        row = base.item_ids.index("sku-unsold") + 1
        base_rows = base.model.item_emb.weight.detach().clone()
        stream_with_new_item(trained, engine, new_item="sku-unsold", upsert=False)
        trainer = OnlineTrainer(engine.stores)
        first = trainer.poll(force=True)
        assert first is not None and first.rebuilt_rows == 1 and first.new_items == 0
        assert trainer.model.num_items == base.model.num_items  # rebuilt in place, not appended
        # one step at the online learning rate moves a row by ~1e-3 per entry; the rebuild replaced it
        moved = (trainer.model.item_emb.weight.detach()[row] - base_rows[row]).abs().max()
        assert moved > 0.05, moved
        reports = [first]
        while (report := trainer.poll(force=True)) is not None:
            reports.append(report)
        engine.ingest([EventIn(user_id="late", item_id=anchor, type="view")])
        reports.append(trainer.poll(force=True))
        assert sum(r.rebuilt_rows for r in reports) == 1  # once: from then on it is a trained row
        published = [v["version"] for v in engine.registry.history() if v.get("kind") == "online"]
        assert published and "sku-unsold" not in engine.registry.meta(published[-1])["untrained_items"]
        assert engine.refresh_model()
        # served from its own row now, and for the choosers' context far above where the row that never
        # trained put it
        assert engine.recommender.serving.rows(np.array([engine.catalog.internal_id("sku-unsold")]))[0] == row
        assert not engine.recommender.serving.unlearned[row]
        context = torch.tensor([[base.item_ids.index(anchor) + 1]])

        def rank(model: SASRec) -> int:
            with torch.no_grad():
                scores = model.eval().encode(context, torch.tensor([1])) @ model.item_vectors().T
            return int((scores[0] > scores[0, row - 1]).sum())

        assert rank(engine.recommender.serving.model) < rank(base.model) - 20  # of 121 items
    finally:
        engine.close()


@pytest.mark.parametrize("damage", ["scrambled", "nan"])
def test_gate_rejects_a_damaged_candidate(trained: TrainedStore, tmp_path: Path, damage: str) -> None:
    engine = engine_on(trained, tmp_path, gate_tolerance=0.05)
    try:
        stream_with_new_item(trained, engine, users=50)
        trainer = OnlineTrainer(engine.stores)
        trainer.poll(force=True)  # trains something, so there is a candidate to judge
        with torch.no_grad():
            table = trainer.model.item_emb.weight
            if damage == "scrambled":
                table[1:] = table[1:][torch.randperm(table.shape[0] - 1)]  # scramble every item's row
            else:  # weights gone non-finite: every score NaN, which must not rank every target first
                table[1:] = float("nan")
        engine.ingest([EventIn(user_id=f"q{u}", item_id=trained.shop.items[u].item_id, type="view") for u in range(60)])
        report = trainer.poll(force=True)
        assert report is not None and report.decision is not None
        assert not report.decision.accepted and "worse than current" in report.decision.reason
        assert report.published is None and engine.registry.current() == trained.version
        assert not engine.refresh_model()  # serving keeps the old version
        decisions = engine.model_history()["gate_decisions"]
        assert decisions[-1]["accepted"] is False and decisions[-1]["figures"]["older"]["current"]["ndcg@10"] > 0
    finally:
        engine.close()


def test_the_first_decision_judges_the_current_version_as_its_anchor_scored_it(
    trained: TrainedStore, tmp_path: Path
) -> None:
    """A fresh older holdout is scored with the current version once (its anchor); the first gate decision
    reports the same ranks and figures for the current version on it."""
    engine = engine_on(trained, tmp_path)
    try:
        trainer = OnlineTrainer(engine.stores)
        version, current = trainer.publisher.current()
        older = trainer.older_eval_set()
        fresh = holdout_ranks(current, older)
        holdout = trainer.checkpoints.load_holdout()
        np.testing.assert_allclose(holdout["anchor"]["gains"], Anchor.from_ranks(version, fresh).gains)
        stream_with_new_item(trained, engine, users=50)
        assert trainer.poll(force=True).decision is None  # trains: a candidate to judge from the next batch on
        engine.ingest([EventIn(user_id=f"q{u}", item_id=trained.shop.items[u].item_id, type="view") for u in range(60)])
        report = trainer.poll(force=True)
        assert report is not None and report.decision is not None and report.decision.current_version == version
        np.testing.assert_array_equal(report.decision.ranks["current"]["older"], fresh)
        assert report.decision.figures["older"]["current"] == summarize(fresh, (10,))
    finally:
        engine.close()


def test_repeated_rejections_restart_the_trainer_from_the_served_version(trained: TrainedStore, tmp_path: Path) -> None:
    engine = engine_on(trained, tmp_path, gate_tolerance=0.05)
    try:
        stream_with_new_item(trained, engine, users=50)
        trainer = OnlineTrainer(engine.stores)
        holdout = trainer.checkpoints.load_holdout()
        assert holdout is not None and holdout["anchor"]["version"] == trained.version
        assert len(holdout["anchor"]["gains"]) == len(holdout["users"])  # the lineage's first version, per user
        trainer.poll(force=True)  # grows the new item's row and trains
        served = engine.registry.load(trained.version).model.item_emb.weight.detach()
        reports = []
        for round_ in range(RESYNC_AFTER):
            with torch.no_grad():
                table = trainer.model.item_emb.weight
                table[1:] = table[1:][torch.randperm(table.shape[0] - 1)]
            engine.ingest(
                [
                    EventIn(user_id=f"r{round_}-{u}", item_id=trained.shop.items[u].item_id, type="view")
                    for u in range(60)
                ]
            )
            reports.append(trainer.poll(force=True))
        assert all(r is not None and r.decision is not None and not r.decision.accepted for r in reports)
        assert all("resynced" not in r.decision.context for r in reports[:-1])
        resync = reports[-1].decision.context["resynced"]
        assert resync["to"] == trained.version == engine.registry.current()
        # back on the served weights (one online step since), the grown row kept
        table = trainer.model.item_emb.weight.detach()
        assert table.shape[0] == served.shape[0] + 1 and trainer.item_ids[-1] == "sku-new"
        assert torch.allclose(table[: served.shape[0]], served, atol=0.01)
        # fine-tuning runs without dropout on the restarted weights too (the served version was built with 0.2)
        rates = [m.p for m in trainer.model.modules() if isinstance(m, Dropout)]
        assert rates and all(p == 0.0 for p in rates) and trainer.model.config.dropout > 0
        # the discarded offsets leave the record of what the weights were trained on
        [[_, discarded_to]] = resync["discarded_offsets"]
        assert trainer.state.trained_ranges == [[discarded_to + 1, reports[-1].last_offset]]
        assert trainer.state.published == [discarded_to]
        logged = engine.model_history()["gate_decisions"][-1]
        assert logged["context"]["resynced"]["to"] == trained.version
    finally:
        engine.close()


def test_a_rollback_keeps_the_trainers_progress_and_publishes_on_the_older_version(
    trained: TrainedStore, tmp_path: Path
) -> None:
    engine = engine_on(trained, tmp_path)
    try:
        stream_with_new_item(trained, engine, users=100)
        trainer = OnlineTrainer(engine.stores)
        while trainer.poll(force=True) is not None:
            pass
        engine.ingest([EventIn(user_id="late", item_id="sku-new", type="view")])
        trainer.poll(force=True)
        assert engine.registry.current() != trained.version
        batches = trainer.state.batches
        engine.registry.rollback(to=trained.version)  # trained.version has no row for sku-new
        engine.ingest([EventIn(user_id="later", item_id="sku-new", type="view")])
        trainer.poll(force=True)
        # the weights trained since stay (sku-new's row with them), and the lineage continues on the rolled-back
        # version: whatever it publishes next is a child of it, accepted by the gate against it
        assert trainer.item_ids[-1] == "sku-new" and trainer.state.batches == batches + 1
        current = engine.registry.current()
        assert trainer.state.base_version == current
        assert current == trained.version or engine.registry.meta(current)["parent"] == trained.version
        assert trainer.state.trained_ranges[0][0] == engine.registry.meta(trained.version)["offsets"]["to"] + 1
    finally:
        engine.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kill_at", "log_kind"), [("startup", "sqlite"), ("after-two-batches", "sqlite"), ("after-two-batches", "kafka")]
)
def test_sigkill_mid_batch_never_skips_events(
    trained: TrainedStore, tmp_path: Path, kill_at: str, log_kind: str, request: pytest.FixtureRequest
) -> None:
    data_dir = trained.copy_to(tmp_path / "data")
    log_env: dict[str, str] = {}
    if log_kind == "kafka":  # the same events, in a topic: the trainer is a consumer of it
        url = request.getfixturevalue("kafka_broker").url(f"trainer-{uuid.uuid4().hex[:8]}")
        log_env["FRESHREC_STORAGE__EVENT_LOG_URL"] = url
        with closing(open_event_log(f"sqlite:///{data_dir / 'events.db'}")) as sqlite_log:
            pages = list(iter_pages(sqlite_log))
        with closing(open_event_log(url)) as kafka_log:
            for page in pages:
                kafka_log.append(page)
            assert kafka_log.ends()[0] == pages[-1][-1].offset
    engine = build_engine(
        make_settings(data_dir, storage={"event_log_url": log_env.get("FRESHREC_STORAGE__EVENT_LOG_URL")})
    )
    try:
        start = engine.event_log.ends()[0] + 1
        rng = np.random.default_rng(0)
        items = [it.item_id for it in trained.shop.items]
        events = [
            EventIn(
                user_id=f"s{u % 300}",
                item_id=items[int(rng.integers(len(items)))],
                type="view",
                ts=trained.shop.end_ts + n,
            )
            for n, u in enumerate(range(6000))
        ]
        for i in range(0, len(events), 1000):
            engine.ingest(events[i : i + 1000])
        last = engine.event_log.ends()[0]
    finally:
        engine.close()
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "FRESHREC_ONLINE__MICRO_BATCH_EVENTS": "500",
        "FRESHREC_ONLINE__PUBLISH_INTERVAL_S": "0",
        "FRESHREC_ONLINE__GATE_TOLERANCE": "0.5",
        "FRESHREC_MODEL__DIM": "32",
        **log_env,
    }
    checkpoints = CheckpointStore(data_dir / "models" / "trainer")
    cmd = [sys.executable, "-m", "freshrec.cli", "--data-dir", str(data_dir), "trainer", "--once"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        if kill_at == "startup":  # loaded and about to train its first micro-batch
            assert proc.stdout is not None
            wait_for(lambda: "online trainer from" in proc.stdout.readline(), "the trainer to start")
        else:  # two micro-batches committed, the third in progress
            wait_for(lambda: (c := checkpoints.load()) is not None and c[2].batches >= 2, "two checkpoints")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    ckpt = CheckpointStore(data_dir / "models" / "trainer").load()
    committed = ckpt[2].committed[0] if ckpt else start - 1
    assert start - 1 <= committed < last  # killed before the end
    if ckpt:  # everything committed was trained, in one contiguous range from the start
        assert ckpt[2].trained_ranges[0][0] == start and ckpt[2].trained_ranges[-1][1] == committed
    subprocess.run(cmd, env=env, check=True, timeout=600, capture_output=True)
    _, _, state = CheckpointStore(data_dir / "models" / "trainer").load()
    assert state.committed == [last]
    covered = sorted({o for lo, hi in state.trained_ranges for o in range(lo, hi + 1)})
    assert covered == list(range(start, last + 1))  # retrained maybe, skipped never
    url = log_env.get("FRESHREC_STORAGE__EVENT_LOG_URL", f"sqlite:///{data_dir / 'events.db'}")
    with closing(open_event_log(url)) as log:
        assert log.committed(TRAINER_GROUP) == (last,)  # what the log's own tools see as the trainer's position


def test_the_trainer_consumes_every_partition_of_a_topic(
    trained: TrainedStore, tmp_path: Path, kafka_broker: KafkaBroker
) -> None:
    url = kafka_broker.url(f"trainer-{uuid.uuid4().hex[:8]}?partitions=3")
    settings = make_settings(trained.copy_to(tmp_path / "data"), storage={"event_log_url": url}, online=ONLINE)
    engine = build_engine(settings)
    try:
        # the version was trained on another log (the fixture's SQLite file): the trainer starts at this one's end
        trainer = OnlineTrainer(engine.stores)
        assert trainer.state.committed == [base(p) for p in range(3)]
        stream_with_new_item(trained, engine, users=150)
        reports = []
        while (report := trainer.poll(force=True)) is not None:
            reports.append(report)
        ends = engine.event_log.ends()
        assert len({partition_of(o) for o in ends if local(o)}) == 3
        assert tuple(trainer.state.committed) == ends == engine.event_log.committed(TRAINER_GROUP)
        covered = sorted(o for lo, hi in trainer.state.trained_ranges for o in range(lo, hi + 1))
        assert covered == sorted(e.offset for e in iter_events(engine.event_log))  # every event, once
        assert sum(r.new_items for r in reports) == 1
        again = OnlineTrainer(engine.stores)  # a restart resumes from the checkpoint's cursor
        assert tuple(again.state.committed) == ends and again.poll(force=True) is None
    finally:
        engine.close()


def test_weights_trained_before_a_lull_are_published_when_idle(trained: TrainedStore, tmp_path: Path) -> None:
    engine = engine_on(trained, tmp_path)
    try:
        stream_with_new_item(trained, engine, users=60)
        settings = engine.settings.online.model_copy(update={**ONLINE, "idle_publish_s": 0.05})
        trainer = OnlineTrainer(engine.stores, settings)
        before = engine.registry.current()
        while trainer.poll(force=True) is not None:
            pass
        assert engine.registry.current() == before or not trainer.state.unpublished_ranges()
        # nothing new comes: once the idle time has passed, a poll publishes what was trained
        wait_for(lambda: trainer.poll() is None and engine.registry.current() != before, "the idle publish")
        meta = engine.registry.meta(engine.registry.current())
        assert meta["kind"] == "online" and meta["offsets"]["to"] == engine.event_log.ends()[0]
        decision = GateLog(engine.registry.root).read(limit=1)[-1]
        assert "recent" not in json.dumps(decision["figures"])  # judged on the older holdout only
    finally:
        engine.close()


def test_a_trainer_behind_takes_larger_micro_batches_until_caught_up(trained: TrainedStore, tmp_path: Path) -> None:
    engine = engine_on(trained, tmp_path)  # micro-batches of 400
    try:
        users = sorted({e.user_id for e in trained.shop.events})[:50]
        items = [i.item_id for i in trained.shop.items[:40]]
        engine.ingest([EventIn(user_id=users[n % 50], item_id=items[n % 40], type="view") for n in range(1000)])
        trainer = OnlineTrainer(engine.stores)
        first = engine.event_log.read(0, 1)[0].offset
        reports = []
        while (report := trainer.poll(force=True)) is not None:
            reports.append(report)
        # 1,000 waiting (more than 400): twice a micro-batch at once; then 200, no more than a micro-batch
        assert [r.events for r in reports] == [800, 200]
        assert trainer.state.committed == [engine.event_log.ends()[0]]
        assert [(r.first_offset, r.last_offset) for r in reports][1][0] == reports[0].last_offset + 1
        assert reports[0].first_offset >= first
        engine.ingest([EventIn(user_id=users[n % 50], item_id=items[n % 40], type="click") for n in range(300)])
        assert trainer.poll(force=True).events == 300  # caught up: plain micro-batches again
    finally:
        engine.close()


def test_micro_batch_trains_new_entries_and_short_replay_spans(trained: TrainedStore, tmp_path: Path) -> None:
    engine = engine_on(trained, tmp_path)
    try:
        trainer = OnlineTrainer(engine.stores)
        seqs, rows = trainer.sequences, trainer.learner.rows
        older = [u for u in seqs if len(seqs.get(u)) > 20][:5]
        assert older, "the trained store should have users with long histories"
        fresh_user = older[0]
        rng = np.random.default_rng(0)
        parts = micro_batch(seqs, rows, {fresh_user: 2}, older[1:], trainer.model.config.max_len, rng, 6, 3)
        assert parts is not None
        # width bounded by context + targets, not by max_len: no row is padded out to a whole window
        assert all(part.items.shape[1] <= 6 + 3 for part in parts)
        rows_xy = [
            (x[x > 0], y) for part in parts for x, y in zip(part.items.numpy(), part.targets.numpy(), strict=True)
        ]
        assert sorted((y > 0).sum() for _, y in rows_xy) == [2, 3, 3, 3, 3]  # the fresh user's two newest entries
        fresh_rows = [x for x, y in rows_xy if (y > 0).sum() == 2]
        assert np.array_equal(fresh_rows[0], rows(seqs.get(fresh_user).item_array())[-9:-1])  # 6 context + 2 new
        owns = [rows(seqs.get(u).item_array()) for u in older[1:]]
        for x, _ in rows_xy:
            if x is fresh_rows[0]:
                continue
            # each replayed span is a contiguous piece of one of the replayed users' own sequences
            assert any(np.array_equal(own[s : s + len(x)], x) for own in owns for s in range(len(own) - len(x) + 1))
    finally:
        engine.close()


def test_fine_tuning_keeps_the_exclude_seen_objective(trained: TrainedStore, tmp_path: Path) -> None:
    settings = make_settings(trained.copy_to(tmp_path / "data"), online=ONLINE, train={"exclude_seen": True})
    engine = build_engine(settings)
    try:
        trainer = OnlineTrainer(engine.stores)
        loss = trainer.learner.loss
        assert isinstance(loss, FullSoftmaxCE) and loss.exclude_seen
        seqs = trainer.sequences
        older = [u for u in seqs if len(seqs.get(u)) > 20][:4]
        parts = micro_batch(
            seqs, trainer.learner.rows, {older[0]: 3}, older[1:], trainer.model.config.max_len, np.random.default_rng(0)
        )
        assert parts is not None
        part = parts[0]
        flat = part.targets.reshape(-1)
        positions = flat.nonzero().squeeze(1)
        targets = flat.index_select(0, positions)
        with torch.no_grad():
            hidden = trainer.model(part.items, part.types, positions=positions)
            table = trainer.model.item_emb.weight
            masked = loss(hidden, table, targets, (part.items, positions))
            plain = FullSoftmaxCE()(hidden, table, targets, (part.items, positions))
        # the micro-batch's rows hold their context, so the seen items leave every target's softmax
        assert float(masked) < float(plain)
    finally:
        engine.close()


def test_packed_parts_make_the_same_step_as_one_padded_batch() -> None:
    rng = np.random.default_rng(0)
    rows = [rng.integers(1, 30, size=n) for n in (3, 4, 4, 5, 9, 17, 31)]
    types = [np.ones_like(r) for r in rows]
    targets = [np.where(rng.random(len(r)) < 0.5, rng.integers(1, 30, size=len(r)), 0) for r in rows]
    targets[0][:] = 7  # at least one target
    parts = pack_rows(rows, types, targets, quantiles=(0.5, 0.8))
    assert len(parts) == 3 and sum(p.items.shape[0] for p in parts) == len(rows)
    assert sum(p.items.numel() for p in parts) < len(rows) * 31  # less padding than one batch
    [whole] = pack_rows(rows, types, targets, quantiles=())
    assert whole.items.shape == (len(rows), 31)
    after = []
    for batch in (parts, whole):
        torch.manual_seed(0)
        model = SASRec(SASRecConfig(num_items=30, dim=16, heads=2, layers=2, max_len=32, dropout=0.0))
        optimizer = make_optimizer(model, 1e-2, 0.0)
        loss = train_step(model, optimizer, batch, FullSoftmaxCE(), torch.device("cpu"))
        after.append((loss, model.item_emb.weight.detach().clone()))
    assert after[0][0] == pytest.approx(after[1][0], rel=1e-5)
    assert torch.allclose(after[0][1], after[1][1], atol=1e-5)


def test_a_young_row_follows_every_new_chooser_until_it_grows_up(trained: TrainedStore, tmp_path: Path) -> None:
    """A new item chosen after item A, then after item B (another category): once B's choosers are in, the
    item ranks high after B, without waiting for gradient steps; past YOUNG_EVENTS choices it trains alone."""
    engine = engine_on(trained, tmp_path)
    try:
        shop = trained.shop
        a = shop.items[5].item_id
        b = next(i.item_id for i in shop.items if shop.category_of[i.item_id] != shop.category_of[a])
        engine.upsert_items([ItemIn(item_id="sku-new", title="Brand new", categories=[shop.category_of[a]])])
        trainer = OnlineTrainer(engine.stores)
        t0 = shop.end_ts + 100

        def choose(after: str, users: range) -> None:
            events = []
            for u in users:
                events += [
                    EventIn(user_id=f"n{u}", item_id=after, type="view", ts=t0 + 10 * u),
                    EventIn(user_id=f"n{u}", item_id="sku-new", type="click", ts=t0 + 10 * u + 5),
                ]
            engine.ingest(events)
            while trainer.poll(force=True) is not None:
                pass

        def rank_after(item: str) -> int:
            idx = engine.catalog.internal_ids([item, "sku-new"])
            user = trainer.learner.encode([trainer.learner.readable((np.array([idx[0]]), np.array([1])))])
            scores = (user @ trainer.model.item_emb.weight.detach()[1:].T)[0]
            row = int(trainer.learner.rows(np.array([idx[1]]))[0])
            return int((scores > scores[row - 1]).sum())

        choose(a, range(8))
        new_idx = engine.catalog.internal_ids(["sku-new"])[0]
        assert trainer.growth.young[new_idx].n == 8
        before = rank_after(b)
        choose(b, range(8, 16))
        assert trainer.growth.young[new_idx].n == 16
        after = rank_after(b)
        assert after < before and after < 10, (before, after)
        assert rank_after(a) < 10  # the first choosers still find it
        choose(b, range(16, 24))
        assert new_idx not in trainer.growth.young  # grown up: gradient steps alone from here
    finally:
        engine.close()


def test_the_trainer_forgets_erased_users(trained: TrainedStore, tmp_path: Path) -> None:
    engine = engine_on(trained, tmp_path)
    try:
        trainer = OnlineTrainer(engine.stores)
        held_out = sorted(trainer.publisher.older_users)[0]
        other = next(u for u in trainer.sequences if u != held_out and u not in trainer.publisher.older_users)
        assert engine.delete_user(held_out) > 0 and engine.delete_user(other) > 0
        engine.ingest([EventIn(user_id="someone", item_id=trained.shop.items[0].item_id, type="view")])
        trainer.poll(force=True)
        for user in (held_out, other):
            assert trainer.sequences.get(user) is None and user not in trainer.buffer.items
        assert held_out not in trainer.publisher.older_users
        holdout = CheckpointStore(engine.registry.root / "trainer").load_holdout()
        assert held_out not in holdout["users"] and len(holdout["users"]) == len(trainer.publisher.older_users)
        assert "anchor" in holdout  # re-anchored on the users left
        restarted = OnlineTrainer(engine.stores)  # and after a restart
        assert held_out not in restarted.publisher.older_users and restarted.sequences.get(other) is None
    finally:
        engine.close()

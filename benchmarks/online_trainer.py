"""Online trainer: throughput, parameter freshness (event -> served weights) and its cost to serving p99.

    python benchmarks/online_trainer.py                  # 6,040 users, 3,416 items, default model; ~15-20 min
    python benchmarks/online_trainer.py --events 50000 --rate 200 --events-rate 200 --duration 60
    python benchmarks/online_trainer.py --quick          # tiny store and model, every part for a few seconds

The store is a generated shop (freshrec.datasets.synthetic: browsing chains, drift, new arrivals) split in
time: the older part is ingested and a default model (SASRec d=64, 2 layers, max_len 200) is trained on it
for ``--train-seconds`` and published; items first seen in the newer part are added to the catalogue only
afterwards, so the online trainer has to grow its item table for them. The newer part is the stream.

1. **Throughput**: ``--events`` newer events in the log as a backlog; an in-process OnlineTrainer with the
   default online settings (micro-batch ``online.micro_batch_events``) trains through it. Passes: publishing
   off, and publishing on (gate + publish every ``--publish-interval`` s), each at every one of
   ``--threads`` torch threads (``freshrec serve`` gives its trainer ``online.torch_threads``, 1 by default;
   a standalone ``freshrec trainer`` on a 2-core machine can take 2). Each pass runs ``--repeats`` times and
   reports its median. events/s = events / wall seconds of the pass (log reads, growth, training, gate,
   checkpoints; the trainer's start-up is reported apart). The target is judged with publishing on at the
   most threads measured.
2. **Event -> served weights**: ``freshrec serve --online`` with serving.model_poll_s = ``--model-poll``
   and otherwise default settings. Events are posted at ``--events-rate`` events/s in batches of
   ``--batch`` (open loop); each batch's highest log offset comes from its ack. ``GET /v1/model`` is polled
   every ``--watch-interval`` s; a batch counts as served once the served version's trained offsets
   (``offsets.to`` in /v1/model/history; ``data.max_offset`` in /v1/model) reach it. Only batches sent in
   the first ``--duration`` s are measured; the stream goes on afterwards (at most ``--drain`` s) because
   the trainer publishes only when a new micro-batch arrives. Batches still uncovered are reported.
3. **Serving p99 with vs without the trainer**: two fresh servers (``--no-online``, ``--online``), each with
   an open-loop ``GET /v1/users/{id}/recommendations?k=10`` load at ``--rate`` req/s for ``--duration`` s
   while events stream at ``--events-rate`` (started ``--warmup`` s before the load). The load driver
   (benchmarks/loadgen.py), the event stream, the server and its trainer share the machine's cores.
   ``--serving-pairs`` N runs N such pairs and reports the median of their p99 ratios (the target's
   figure), and the ratio of the p99s of all requests of all runs pooled per side.

With ``FRESHREC_SERVING__RANKER=true`` in the environment every part runs with the served pipeline on: the
trainer then also records ranker requests and refits the ranker (part 1 reports the seconds it spent on that).

Every server run starts from a copy of the same store, so no part sees another's events or versions.
``--store-cache DIR`` keeps the built store (minutes of generation and training) for later runs with the
same store arguments.
``--quick`` (the smoke test) uses a tiny shop and model, publishes at every chance (interval 0 in process,
1 s in the servers) and loosens the gate to 0.99, so that every path runs; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import pickle
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

from freshrec.config import OnlineSettings, load_settings
from freshrec.datasets.synthetic import generate_shop
from freshrec.engine import build_engine
from freshrec.online.trainer import BatchReport, OnlineTrainer
from freshrec.pipeline import train_and_publish
from freshrec.stores import open_stores
from loadgen import HEADER, LoadResult, open_loop
from machine import ROOT, write_json
from stores import Server

TARGETS = {"events_per_s": 5000.0, "freshness_p50_s": 30.0, "p99_ratio": 1.5}


def pct(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


# ---- the store ---------------------------------------------------------------------------------------


@dataclass
class Store:
    base: Path  # older events + a trained, published version + every item in the catalogue
    backlog: Path  # base + the newer events (part 1)
    stream: list[dict[str, str]]  # the newer events as POST bodies
    users: list[str]  # users with history, for recommendation requests
    info: dict[str, Any]


def cached_build(work: Path, args: argparse.Namespace) -> Store:
    """build(), or the store a previous run built with the same arguments under ``--store-cache``."""
    if args.store_cache is None:
        return build(work, args)
    key = json.dumps(
        [args.users, args.items, args.categories, args.seed, args.events, args.train_seconds, args.model, args.train]
    )
    folder = args.store_cache / hashlib.sha1(key.encode()).hexdigest()[:12]
    if (folder / "store.pkl").exists():
        print(f"store: reusing {folder}")
        return pickle.loads((folder / "store.pkl").read_bytes())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    store = build(folder, args)
    (folder / "store.pkl").write_bytes(pickle.dumps(store))
    return store


def build(work: Path, args: argparse.Namespace) -> Store:
    t0 = time.perf_counter()
    shop = generate_shop(n_users=args.users, n_items=args.items, n_categories=args.categories, seed=args.seed)
    n_new = max(args.events, 1000)
    if n_new > len(shop.events) // 2:
        raise SystemExit(f"the shop has {len(shop.events)} events: too few for a backlog of {n_new}; raise --users")
    history, newer = shop.events[:-n_new], shop.events[-n_new:]
    seen = {e.item_id for e in history}
    base, backlog = work / "base", work / "backlog"
    settings = load_settings(
        storage={"data_dir": base, "sqlite_synchronous": "NORMAL"},
        model=args.model,
        train={"max_seconds": args.train_seconds, "compile": "off", **args.train},
    )
    engine = build_engine(settings, load_model=False)
    try:
        old_items = [i for i in shop.items if i.item_id in seen]
        for s in range(0, len(old_items), 1000):
            engine.upsert_items(old_items[s : s + 1000])
        for s in range(0, len(history), 1000):
            engine.ingest(history[s : s + 1000])
        t_train = time.perf_counter()
        report = train_and_publish(engine.stores, progress=False)
        train_s = time.perf_counter() - t_train
        # Launched after the model was trained: the model has no rows for them, the trainer must grow them.
        new_items = [i for i in shop.items if i.item_id not in seen]
        for s in range(0, len(new_items), 1000):
            engine.upsert_items(new_items[s : s + 1000])
    finally:
        engine.close()
    shutil.copytree(base, backlog)
    engine = build_engine(
        load_settings(storage={"data_dir": backlog, "sqlite_synchronous": "NORMAL"}), load_model=False
    )
    try:
        for s in range(0, args.events, 1000):
            engine.ingest(newer[s : min(args.events, s + 1000)])
    finally:
        engine.close()
    # Live events: no event_id (each post is new, also when the stream wraps) and no ts (the server's clock).
    stream = [{"user_id": e.user_id, "item_id": e.item_id, "type": e.type} for e in newer]
    info = {
        "generator": {"users": args.users, "items": args.items, "categories": args.categories, "seed": args.seed},
        "history_events": len(history),
        "newer_events": len(newer),
        "backlog_events": args.events,
        "items_in_model": len(seen),
        "items_new": len(new_items),
        "new_items_in_backlog": len({e.item_id for e in newer[: args.events]} - seen),
        "version": report.version,
        "model": settings.model.model_dump(),
        "train_seconds": round(train_s, 1),
        "epochs": len(report.fit.history),
        "test_ndcg@10": {k: report.metrics[k].get("ndcg@10") for k in ("model", "popularity")},
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    return Store(base, backlog, stream, sorted({e.user_id for e in history}), info)


# ---- part 1: throughput in process -------------------------------------------------------------------


def throughput_pass(store: Store, work: Path, label: str, online: OnlineSettings, threads: int) -> dict[str, Any]:
    data_dir = work / f"throughput-{label}"
    shutil.copytree(store.backlog, data_dir)
    settings = load_settings(storage={"data_dir": data_dir}, online=online.model_dump())
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    stores = open_stores(settings)
    try:
        t0 = time.perf_counter()
        trainer = OnlineTrainer(stores)
        startup = time.perf_counter() - t0
        reports: list[BatchReport] = []
        t0 = time.perf_counter()
        while (report := trainer.poll(force=True)) is not None:
            reports.append(report)
        wall = time.perf_counter() - t0
    finally:
        stores.close()
        torch.set_num_threads(previous_threads)
        shutil.rmtree(data_dir, ignore_errors=True)
    events = sum(r.events for r in reports)
    seconds = [r.seconds for r in reports]
    gated = [r for r in reports if r.decision is not None]
    losses = [r.loss for r in reports if r.loss is not None]
    return {
        "pass": label,
        "threads": threads,
        "publish_interval_s": online.publish_interval_s,
        "micro_batch_events": online.micro_batch_events,
        "events": events,
        "batches": len(reports),
        "wall_s": wall,
        "events_per_s": events / wall if wall > 0 else float("nan"),
        "batch_s_p50": pct(seconds, 50),
        "batch_s_p99": pct(seconds, 99),
        "batch_s_max": max(seconds, default=float("nan")),
        # A gate evaluation (+ publish) happens inside the batch that triggers it.
        "gated_batch_s_p50": pct([r.seconds for r in gated], 50),
        "plain_batch_s_p50": pct([r.seconds for r in reports if r.decision is None], 50),
        "gate_decisions": len(gated),
        "published": sum(r.published is not None for r in reports),
        "gate_reasons": dict(Counter(r.decision.reason for r in gated if r.decision is not None)),
        "new_items": sum(r.new_items for r in reports),
        "trained_users_mean": float(np.mean([r.trained_users for r in reports])) if reports else 0.0,
        "replayed_users_mean": float(np.mean([r.replayed_users for r in reports])) if reports else 0.0,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "startup_s": startup,
        # with serving.ranker on (FRESHREC_SERVING__RANKER=true): the trainer's ranker job, inside the batches
        "ranker_s": sum(r.ranker_seconds for r in reports),
        "ranker_requests": sum(r.ranker_requests for r in reports),
        "ranker_decisions": sum(r.ranker_decision is not None for r in reports),
    }


# ---- live runs: event stream, model watcher ----------------------------------------------------------


@dataclass
class Posted:
    scheduled: float
    acked: float = float("nan")
    max_offset: int | None = None
    ok: bool = False


@dataclass
class Watch:
    """``GET /v1/model`` samples: (response time, served version, its data.max_offset)."""

    samples: list[tuple[float, str | None, int | None]] = field(default_factory=list)

    def served_offset(self) -> int:
        return (self.samples[-1][2] or 0) if self.samples else 0


async def stream_events(
    url: str,
    bodies: list[dict[str, str]],
    events_rate: float,
    batch: int,
    done: Callable[[float, list[Posted]], bool],
    posted: list[Posted],
    watch: Watch | None = None,
    watch_interval: float = 0.2,
) -> None:
    """POST batches on a fixed schedule until ``done(elapsed, posted)``; optionally poll /v1/model too.

    Open loop: each batch is its own task, so a slow ack delays neither the next batch nor the watcher.
    """
    batch_rate = events_rate / batch
    stop_watch = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, timeout=60.0) as client:

        async def post(i: int, record: Posted) -> None:
            start = i * batch % len(bodies)
            body = (bodies[start:] + bodies)[:batch]
            try:
                r = await client.post("/v1/events", json=body)
                record.acked = time.monotonic()
                if r.status_code == 200:
                    record.ok, record.max_offset = True, max(r.json()["offsets"])
            except httpx.HTTPError:
                record.acked = time.monotonic()

        async def watcher() -> None:
            assert watch is not None
            while not stop_watch.is_set():
                try:
                    info = (await client.get("/v1/model")).json()
                    watch.samples.append(
                        (time.monotonic(), info.get("version"), info.get("data", {}).get("max_offset"))
                    )
                except (httpx.HTTPError, ValueError):
                    pass
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop_watch.wait(), watch_interval)

        watch_task = asyncio.create_task(watcher()) if watch is not None else None
        tasks = []
        begin = time.monotonic() + 0.1
        i = 0
        while True:
            scheduled = begin + i / batch_rate
            if done(scheduled - begin, posted):
                break
            await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
            record = Posted(scheduled)
            posted.append(record)
            tasks.append(asyncio.create_task(post(i, record)))
            i += 1
        await asyncio.gather(*tasks)
        if watch_task is not None:
            await asyncio.sleep(watch_interval)  # one more sample after the last ack
            stop_watch.set()
            await watch_task


def wait_for_trainer(server: Server, timeout: float = 900.0) -> float:
    """Seconds until the server's trainer process has loaded its model and sequences (it says so)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if "online trainer from" in server.log(tail=10**7):
            return time.monotonic() - t0
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited: {server.log()}")
        time.sleep(0.2)
    raise RuntimeError(f"the online trainer did not start within {timeout:.0f} s: {server.log()}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def cpu_snapshot(server: Server) -> dict[str, float]:
    trainers = child_pids(server.proc.pid)
    return {"server": cpu_seconds(server.proc.pid), "trainer": sum(cpu_seconds(p) for p in trainers)}


def online_history(url: str) -> dict[str, Any]:
    """Online versions (offsets.to) and gate decisions, from GET /v1/model/history."""
    history = httpx.get(f"{url}/v1/model/history", timeout=60).json()
    online = {
        v["version"]: (v.get("offsets") or {}).get("to") for v in history["versions"] if v.get("kind") == "online"
    }
    decisions = history["gate_decisions"]
    return {
        "online_versions": online,
        "gate_decisions": len(decisions),
        "gate_accepted": sum(bool(d.get("accepted")) for d in decisions),
        "gate_reasons": dict(Counter(d.get("reason") for d in decisions)),
    }


def server_env(args: argparse.Namespace) -> dict[str, str]:
    env = {"FRESHREC_SERVING__MODEL_POLL_S": str(args.model_poll), "PYTHONUNBUFFERED": "1"}
    if args.publish_interval_live is not None:
        env["FRESHREC_ONLINE__PUBLISH_INTERVAL_S"] = str(args.publish_interval_live)
    if args.gate_tolerance is not None:
        env["FRESHREC_ONLINE__GATE_TOLERANCE"] = str(args.gate_tolerance)
    for kv in args.online:
        key, value = kv.split("=", 1)
        env[f"FRESHREC_ONLINE__{key.upper()}"] = value
    return env


# ---- part 2: event -> served weights -----------------------------------------------------------------


def freshness_run(store: Store, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    data_dir = work / "freshness"
    shutil.copytree(store.base, data_dir)
    posted: list[Posted] = []
    watch = Watch()

    def done(elapsed: float, records: list[Posted]) -> bool:
        if elapsed < args.duration:
            return False
        if elapsed >= args.duration + args.drain:
            return True
        measured = [r for r in records if r.scheduled - records[0].scheduled < args.duration]
        served = watch.served_offset()
        return all(not math.isnan(r.acked) for r in measured) and all(
            not r.ok or (r.max_offset or 0) <= served for r in measured
        )

    with Server(data_dir, env=server_env(args), online=True) as server:
        trainer_start = wait_for_trainer(server)
        cpu0 = cpu_snapshot(server)
        t0 = time.monotonic()
        asyncio.run(stream_events(server.url, store.stream, args.events_rate, args.batch, done, posted, watch))
        wall = time.monotonic() - t0
        cpu1 = cpu_snapshot(server)
        history = online_history(server.url)
    shutil.rmtree(data_dir, ignore_errors=True)
    # Coverage by the registry's own record of what each served version was trained on (offsets.to).
    to_of = history["online_versions"]
    served = [(t, v, to_of.get(v)) for t, v, _ in watch.samples]
    first = posted[0].scheduled if posted else 0.0
    measured = [r for r in posted if r.scheduled - first < args.duration]
    lags, uncovered = [], 0
    for r in measured:
        if not r.ok:
            continue
        t = next((t for t, _, to in served if t >= r.acked and to is not None and to >= (r.max_offset or 0)), None)
        if t is None:
            uncovered += 1
        else:
            lags.append(t - r.acked)
    versions_seen = list(dict.fromkeys(v for _, v, _ in watch.samples))
    swaps = [t for (t, v, _), (_, prev, _) in zip(watch.samples[1:], watch.samples, strict=False) if v != prev]
    return {
        "batches_measured": len(measured),
        "batches_failed": sum(not r.ok for r in measured),
        "batches_uncovered": uncovered,
        "batches_posted_total": len(posted),
        "freshness_s_p50": pct(lags, 50),
        "freshness_s_p99": pct(lags, 99),
        "freshness_s_max": max(lags, default=float("nan")),
        "ack_ms_p50": pct([(r.acked - r.scheduled) * 1000 for r in measured if r.ok], 50),
        "versions_published": len(to_of),
        "versions_served": sum(v in to_of for v in versions_seen),
        "served_swap_interval_s_p50": pct(np.diff(swaps), 50) if len(swaps) > 1 else float("nan"),
        "gate_decisions": history["gate_decisions"],
        "gate_accepted": history["gate_accepted"],
        "gate_reasons": history["gate_reasons"],
        "trainer_startup_s": trainer_start,
        "stream_wall_s": wall,
        "cpu_s": {k: cpu1[k] - cpu0[k] for k in cpu0},
    }


# ---- part 3: serving p99 with and without the trainer ------------------------------------------------


def serving_run(
    store: Store, work: Path, args: argparse.Namespace, online: bool, keep: list[float] | None = None
) -> dict[str, Any]:
    label = "with trainer" if online else "without trainer"
    data_dir = work / f"serving-{'online' if online else 'offline'}"
    shutil.copytree(store.base, data_dir)
    rng = np.random.default_rng(1)
    users = [store.users[i] for i in rng.integers(0, len(store.users), 100_000)]
    stop = threading.Event()
    posted: list[Posted] = []
    failures: list[BaseException] = []
    with Server(data_dir, env=server_env(args), online=online) as server:
        trainer_start = wait_for_trainer(server) if online else None

        def background() -> None:
            try:
                asyncio.run(
                    stream_events(
                        server.url, store.stream, args.events_rate, args.batch, lambda *_: stop.is_set(), posted
                    )
                )
            except BaseException as exc:  # surfaced below: a dead stream would make the comparison meaningless
                failures.append(exc)

        thread = threading.Thread(target=background, name="event-stream", daemon=True)
        thread.start()
        try:
            time.sleep(args.warmup)  # the trainer is busy before the load starts, as in steady state
            cpu0 = cpu_snapshot(server)
            result: LoadResult = open_loop(
                server.url,
                lambda c, i: c.get(f"/v1/users/{users[i % len(users)]}/recommendations", params={"k": 10}),
                args.rate,
                args.duration,
                keep=keep,
            )
            cpu1 = cpu_snapshot(server)
        finally:
            stop.set()
            thread.join(timeout=120)
        history = online_history(server.url)
    shutil.rmtree(data_dir, ignore_errors=True)
    if failures:
        raise RuntimeError(f"event stream failed during '{label}'") from failures[0]
    return {
        "label": label,
        "online": online,
        **result.__dict__,
        "events_posted": sum(r.ok for r in posted) * args.batch,
        "event_batches_failed": sum(not r.ok for r in posted),
        "versions_published": len(history["online_versions"]),
        "gate_decisions": history["gate_decisions"],
        "trainer_startup_s": trainer_start,
        "cpu_s": {k: cpu1[k] - cpu0[k] for k in cpu0},
    }


# ---- main --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000, help="Backlog for the throughput passes.")
    parser.add_argument("--rate", type=float, default=200.0, help="Recommendation requests/s (part 3).")
    parser.add_argument("--events-rate", type=float, default=200.0, help="Events/s streamed (parts 2 and 3).")
    parser.add_argument("--batch", type=int, default=20, help="Events per POST /v1/events.")
    parser.add_argument("--duration", type=float, default=60.0, help="Measured seconds of parts 2 and 3 (each run).")
    parser.add_argument("--drain", type=float, default=60.0, help="Most extra seconds part 2 waits for coverage.")
    parser.add_argument("--warmup", type=float, default=5.0, help="Seconds of events before part 3's load.")
    parser.add_argument("--users", type=int, default=6040, help="Users of the generated shop.")
    parser.add_argument("--items", type=int, default=3416, help="Items of the generated shop.")
    parser.add_argument("--categories", type=int, default=16)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--train-seconds", type=float, default=120.0, help="Training budget of the base version.")
    parser.add_argument("--threads", default=None, help="Torch threads of the publish-off passes (default: 1,2).")
    parser.add_argument(
        "--publish-interval",
        type=float,
        default=None,
        help="publish_interval_s of the publishing pass (default: config).",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="Runs of each throughput pass; the median is reported (a pass lasts seconds, and this shared "
        "machine's speed varies by +-15%% from one to the next).",
    )
    parser.add_argument(
        "--serving-pairs",
        type=int,
        default=1,
        help="Part 3: without/with pairs to run; the median ratio is reported (the p99 of a 30 s run varies "
        "by up to 2x between runs on this machine).",
    )
    parser.add_argument(
        "--gate-tolerance", type=float, default=None, help="online.gate_tolerance of every part (default: config)."
    )
    parser.add_argument(
        "--online",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Override an online setting in every part, e.g. --online dropout=0 (repeatable).",
    )
    parser.add_argument("--model-poll", type=float, default=0.5, help="serving.model_poll_s of the servers.")
    parser.add_argument("--watch-interval", type=float, default=0.2, help="Seconds between GET /v1/model polls.")
    parser.add_argument(
        "--store-cache",
        type=Path,
        default=None,
        help="Keep the built store (history, trained version, backlog) here and reuse it on later runs with "
        "the same store arguments (the build takes minutes; every run copies it, never changes it).",
    )
    parser.add_argument("--parts", default="1,2,3", help="Parts to run, comma-separated.")
    parser.add_argument("--quick", action="store_true", help="Smoke test: tiny store and model, seconds per part.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "online_trainer.json")
    args = parser.parse_args()
    args.model, args.train = {}, {}
    args.publish_interval_live = None  # servers: the configured default
    if args.quick:
        args.users, args.items, args.categories, args.events = 150, 120, 4, 2500
        args.rate, args.events_rate, args.duration, args.drain, args.warmup = 50.0, 100.0, 3.0, 8.0, 1.0
        args.train_seconds, args.train = 3.0, {"epochs": 3}
        args.model = {"dim": 16, "heads": 2, "layers": 1, "max_len": 50}
        # A few seconds per part: publish at every chance, or nothing would be published at all.
        args.publish_interval = 0.0 if args.publish_interval is None else args.publish_interval
        args.publish_interval_live = 1.0
        # A model trained for seconds on a tiny store is judged on holdouts of a few dozen users: with the
        # default 1% tolerance the gate may reject everything, and part 2 would have nothing to measure.
        args.gate_tolerance = 0.99 if args.gate_tolerance is None else args.gate_tolerance
        args.threads = args.threads or "1"
        args.repeats = 1
    # The online settings every part uses: the defaults, bar --online and --gate-tolerance.
    overrides = dict(kv.split("=", 1) for kv in args.online)
    if args.gate_tolerance is not None:
        overrides["gate_tolerance"] = args.gate_tolerance
    defaults = OnlineSettings(**overrides)
    threads = [int(t) for t in (args.threads or f"{defaults.torch_threads},2").split(",")]
    threads = list(dict.fromkeys(threads))
    publish_interval = defaults.publish_interval_s if args.publish_interval is None else args.publish_interval
    parts = {int(p) for p in args.parts.split(",")}

    payload: dict[str, Any] = {"benchmark": "online_trainer", "targets": TARGETS}
    with tempfile.TemporaryDirectory(prefix="freshrec-online-") as tmp:
        work = Path(tmp)
        store = cached_build(work, args)
        payload["store"] = store.info
        print(
            f"store: {store.info['history_events']:,} events trained on ({store.info['epochs']} epochs in "
            f"{store.info['train_seconds']} s), {len(store.stream):,} newer events, "
            f"{store.info['items_new']} items new to the model; model {args.model or 'default'}"
        )

        if 1 in parts:
            print(f"\n1. trainer throughput: {args.events:,} backlog events, micro-batch {defaults.micro_batch_events}")
            print(
                f"{'pass':<12} {'threads':>7} {'events/s':>9} {'batches':>7} {'p50 s':>7} {'p99 s':>7} "
                f"{'gated p50':>9} {'published':>9} {'new items':>9}"
            )
            off = defaults.model_copy(update={"publish_interval_s": 1e9})
            on = defaults.model_copy(update={"publish_interval_s": publish_interval})
            runs = [("publish off", off, t) for t in threads] + [("publish on", on, t) for t in threads]
            rows = []
            for label, online, t in runs:
                repeats = [
                    throughput_pass(store, work, f"{label.replace(' ', '-')}-{t}-{r}", online, t)
                    for r in range(max(1, args.repeats))
                ]
                row = sorted(repeats, key=lambda x: x["events_per_s"])[len(repeats) // 2]  # the median run
                row["pass"] = label
                row["events_per_s_runs"] = [x["events_per_s"] for x in repeats]
                rows.append(row)
                print(
                    f"{label:<12} {t:>7} {row['events_per_s']:>9.0f} {row['batches']:>7} {row['batch_s_p50']:>7.2f} "
                    f"{row['batch_s_p99']:>7.2f} {row['gated_batch_s_p50']:>9.2f} {row['published']:>9} "
                    f"{row['new_items']:>9}"
                )
            payload["throughput"] = rows

        if 2 in parts:
            live_interval = args.publish_interval_live or defaults.publish_interval_s
            print(
                f"\n2. event -> served weights: {args.events_rate:.0f} events/s in batches of {args.batch} for "
                f"{args.duration:.0f} s; publish_interval_s {live_interval}, micro_batch_seconds "
                f"{defaults.micro_batch_seconds}, model_poll_s {args.model_poll}"
            )
            fresh = freshness_run(store, work, args)
            fresh.update(publish_interval_s=live_interval, model_poll_s=args.model_poll)
            payload["freshness"] = fresh
            print(
                f"freshness p50 {fresh['freshness_s_p50']:.2f} s, p99 {fresh['freshness_s_p99']:.2f} s, "
                f"max {fresh['freshness_s_max']:.2f} s over {fresh['batches_measured']} batches "
                f"({fresh['batches_uncovered']} never served in the run, {fresh['batches_failed']} failed); "
                f"{fresh['versions_published']} versions published, {fresh['versions_served']} served; "
                f"gate {fresh['gate_accepted']}/{fresh['gate_decisions']} accepted; trainer CPU "
                f"{fresh['cpu_s']['trainer']:.1f} s in {fresh['stream_wall_s']:.1f} s"
            )

        if 3 in parts:
            print(
                f"\n3. GET recommendations at {args.rate:.0f} req/s for {args.duration:.0f} s, "
                f"events at {args.events_rate:.0f}/s in the background"
            )
            print(f"{'':<16} {HEADER} {'versions':>8} {'srv cpu':>7} {'trn cpu':>7}")
            runs3, ratios = [], []
            pooled: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(max(1, args.serving_pairs)):
                pair = []
                for online in (False, True):
                    row = serving_run(store, work, args, online, pooled[online])
                    pair.append(row)
                    print(
                        f"{row['label']:<16} "
                        f"{LoadResult(**{k: row[k] for k in LoadResult.__dataclass_fields__}).row()} "
                        f"{row['versions_published']:>8} {row['cpu_s']['server']:>7.1f} "
                        f"{row['cpu_s']['trainer']:>7.1f}"
                    )
                runs3 += pair
                ratios.append(pair[1]["p99_ms"] / pair[0]["p99_ms"] if pair[0]["p99_ms"] > 0 else float("nan"))
            ratio = float(np.median(ratios))
            # Every request of every run in one distribution per side: one stall of the shared machine moves
            # a 30 s run's p99 (its 30 slowest requests) a lot, the pooled p99 much less.
            p99_pooled = {k: pct(v, 99) for k, v in pooled.items()}
            payload["serving"] = {
                "runs": runs3,
                "p99_ratios": ratios,
                "p99_ratio": ratio,
                "p99_pooled_ms": {"without trainer": p99_pooled[False], "with trainer": p99_pooled[True]},
                "p99_ratio_pooled": p99_pooled[True] / p99_pooled[False],
            }
            print(f"p99 with / without the trainer: {ratio:.2f} (median of {', '.join(f'{r:.2f}' for r in ratios)})")
            print(
                f"pooled over the runs: p99 {p99_pooled[False]:.1f} ms without, {p99_pooled[True]:.1f} ms with "
                f"the trainer: {payload['serving']['p99_ratio_pooled']:.2f}"
            )

    # name -> (measured, target, met); a NaN (nothing measured) counts as not met
    checks: dict[str, tuple[float, float, bool]] = {}
    if "throughput" in payload:
        # Judged with publishing (the gate) included, on the most threads measured ("on 2 cores": a standalone
        # `freshrec trainer` with online.torch_threads=2); `serve` gives its trainer online.torch_threads
        # (1 by default), reported beside it.
        on_rows = [r for r in payload["throughput"] if r["pass"] == "publish on"]
        best = max(on_rows, key=lambda r: r["threads"])
        value = best["events_per_s"]
        checks["events_per_s"] = (value, TARGETS["events_per_s"], value >= TARGETS["events_per_s"])
        for r in on_rows:
            if r is not best:
                checks[f"events_per_s ({r['threads']} thread{'s' if r['threads'] > 1 else ''})"] = (
                    r["events_per_s"],
                    TARGETS["events_per_s"],
                    r["events_per_s"] >= TARGETS["events_per_s"],
                )
    if "freshness" in payload:
        value = payload["freshness"]["freshness_s_p50"]
        checks["freshness_p50_s"] = (value, TARGETS["freshness_p50_s"], value <= TARGETS["freshness_p50_s"])
    if "serving" in payload:
        value = payload["serving"]["p99_ratio"]
        checks["p99_ratio"] = (value, TARGETS["p99_ratio"], value <= TARGETS["p99_ratio"])
    payload["targets_met"] = {k: {"value": v, "target": t, "met": m} for k, (v, t, m) in checks.items()}
    print("\ntargets (events/s >=, others <=):")
    for name, (value, target, ok) in checks.items():
        print(f"  {name:<24} {value:>10.2f}  target {target:>8.1f}  {'met' if ok else 'NOT met'}")
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_json(args.out, {**payload, "options": options, "online_settings": defaults.model_dump()})


if __name__ == "__main__":
    main()

"""Data-quality guard: bots and floods injected into a streaming replay, the online trainer with and without it.

    python benchmarks/data_guard.py                 # the demo shop (1,500 users, 600 items); ~5-10 min on 2 cores
    python benchmarks/data_guard.py --quick         # a tiny shop and model: every path for a few seconds
    python benchmarks/data_guard.py --real-users ml-100k   # the guard alone over ML-100K: real users flagged

Protocol: streaming replay (prequential), as ``freshrec replay`` (:mod:`freshrec.eval.replay`): a model is
trained once on the events before the cut (80% of the time span) and copied into three runs, which replay
the rest score-then-learn with the online trainer catching up every ``--online-every`` events (micro-batches
through the quality gate, accepted versions swapped in: the ``live+online`` strategy, paced by real events
only so all runs train at the same points; ``live-sequences``, the cut's weights on live sequences, is the
control no training touches):

1. **clean**: the real events only;
2. **guarded**: the same events with bots and floods mixed in (:mod:`freshrec.datasets.bots`: ``burst``
   scrapers, ``hammer`` bots pushing one item, ``marathon`` bots clicking around the clock; duplicate and
   late floods from real users' clients), ``quality.enabled = true``;
3. **unguarded**: the same stream, ``quality.enabled = false``.

All three are scored on the same events: every real user's new-to-them positive events (injected events are
ingested, so live state and the trainer see them, but never scored); changes against the clean run come with a
95% interval from paired per-user differences (:func:`freshrec.metrics.paired_difference`). Quarantine figures
are tallied per event from the guard's verdicts in the trainer (an injected event is labelled in its
``context``, which the guard never reads): the share of injected events kept out of training, per kind, and
the share of real users flagged (users with no injected event; flooded users are reported apart). A user
flagged within a micro-batch loses all its events of that batch, so these shares grow with the micro-batch;
the same stream is also judged one event at a time (the lower bound: a trainer whose every micro-batch holds
one event). Events after the last catch-up are never judged and are left out of the shares.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from freshrec.config import Settings, load_settings
from freshrec.datasets.bots import Injected, inject
from freshrec.datasets.movielens import read_ml100k_ratings
from freshrec.datasets.synthetic import generate_shop
from freshrec.engine import build_engine
from freshrec.eval.replay import ReplayOptions, cut_time, prequential, summarize_outcomes
from freshrec.eval.strategies import LiveSequences, OnlineLearning
from freshrec.metrics import ndcg_gains, paired_difference
from freshrec.pipeline import train_and_publish
from freshrec.quality.guard import DataGuard
from freshrec.schema import EventRecord
from machine import ROOT, SHARED_DATA, write_json

K = 10
TARGETS = {"bot_events_quarantined": 0.95, "real_users_flagged": 0.01, "guarded_ndcg_vs_clean": 0.02}


def settings_for(data_dir: Path, args: argparse.Namespace, guarded: bool = True) -> Settings:
    model = {"dim": 16, "heads": 1, "layers": 1, "max_len": 50} if args.quick else {}
    return load_settings(
        storage={"data_dir": data_dir, "sqlite_synchronous": "NORMAL"},
        model=model,
        train={"max_seconds": args.train_seconds, "compile": "off", "seed": args.seed, "epochs": args.epochs},
        serving={"ranker": False},  # the transformer's own lists: what the online trainer changes
        quality={"enabled": guarded},
    )


def train_at_cut(base: Path, args: argparse.Namespace, items: list, before: list[EventRecord]) -> dict[str, Any]:
    engine = build_engine(settings_for(base, args), load_model=False, trending_refresh_s=0.0)
    try:
        for lo in range(0, len(items), 1000):
            engine.upsert_items(items[lo : lo + 1000])
        for lo in range(0, len(before), 5000):
            engine.append_records(before[lo : lo + 5000])
        report = train_and_publish(engine.stores, holdout="valid", progress=False)
        return {"version": report.version, "epochs": report.fit.epochs, "seconds": report.fit.seconds}
    finally:
        engine.close()


class RealPaced(OnlineLearning):
    """``live+online`` catching up after every ``every`` *real* events, so the three runs train at the same
    points of the real stream (counting injected events too would make the runs with bots train more often
    per real event, which alone changes NDCG); a catch-up still trains on every event logged before it."""

    def learn(self, event: EventRecord) -> None:
        if not Injected.is_injected(event):
            super().learn(event)


class Asked:
    """Records whose list each scored event asks for (prequential asks every strategy once per scored
    event, in order), so runs can be compared per user on the same queries."""

    name = "asked"

    def __init__(self) -> None:
        self.users: list[str] = []

    def recommend(self, user_id: str, k: int) -> list[str]:
        self.users.append(user_id)
        return []

    def learn(self, event: EventRecord) -> None:
        pass


class Tally:
    """Counts the guard's verdicts by what the event is (an injected kind, or ``real``), wrapping the
    trainer's guard: the one place that sees each verdict."""

    def __init__(self, trainer: Any) -> None:
        self.admitted: Counter = Counter()
        self.held: Counter = Counter()
        guard = trainer.guard
        if guard is None:
            return
        judge = guard.admit

        def admit(events: list[EventRecord]) -> Any:
            verdicts = judge(events)
            for e, ok in zip(events, verdicts.admitted, strict=True):
                kind = e.context["injected"] if Injected.is_injected(e) else "real"
                (self.admitted if ok else self.held)[kind] += 1
            return verdicts

        guard.admit = admit


def replay_run(
    name: str, base: Path, work: Path, args: argparse.Namespace, seen: dict, stream: list[EventRecord], guarded: bool
) -> dict[str, Any]:
    data_dir = work / name
    shutil.copytree(base, data_dir)
    engine = build_engine(settings_for(data_dir, args, guarded), load_model=False, trending_refresh_s=0.0)
    started = time.perf_counter()
    try:
        engine.load_model()
        online = RealPaced(engine, args.online_every)
        tally = Tally(online.trainer)
        asked = Asked()
        strategies = [LiveSequences(engine), online, asked]

        def ingest(e: EventRecord) -> None:
            engine.append_records([EventRecord(0, e.user_id, e.item_id, e.type, e.ts, e.value, None, e.context)])

        outcomes = list(
            prequential(
                stream,
                strategies,
                ingest,
                K,
                frozenset(engine.settings.events.negative_types),
                {u: set(items) for u, items in seen.items()},
                scored=lambda e: not Injected.is_injected(e),
            )
        )
        summary = online.summary()
    finally:
        engine.close()
    names = [s.name for s in strategies if s is not asked]
    result = summarize_outcomes(outcomes, names, K, 5)
    return {
        "users": asked.users,
        "gains": ndcg_gains(np.array([o.ranks[online.name] for o in outcomes]), K).tolist(),
        "guarded": guarded,
        "events": len(stream),
        "scored": len(outcomes),
        "ndcg@10": {s: result[s]["overall"][f"ndcg@{K}"] for s in result},
        "hr@10": {s: result[s]["overall"][f"hr@{K}"] for s in result},
        "published_versions": summary["published_versions"],
        "gate": summary["gate"],
        "held": dict(tally.held),
        "admitted": dict(tally.admitted),
        "quality": summary["quality"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def quarantine_figures(run: dict[str, Any], kind_of: dict[str, str], real_users: set[str]) -> dict[str, Any]:
    held, admitted = Counter(run["held"]), Counter(run["admitted"])
    kinds = sorted(k for k in {*held, *admitted} if k != "real")
    per_kind = {k: held[k] / (held[k] + admitted[k]) for k in kinds}
    bots = [k for k in kinds if k in ("burst", "hammer", "marathon")]
    injected = sum(held[k] + admitted[k] for k in kinds)
    flagged = {u["user_id"] for u in run["quality"]["flagged_users"]}
    return {
        "injected_events": injected,
        "injected_quarantined": sum(held[k] for k in kinds) / injected if injected else None,
        "bot_events_quarantined": sum(held[k] for k in bots) / sum(held[k] + admitted[k] for k in bots),
        "per_kind": per_kind,
        "bots_flagged": sum(1 for u, k in kind_of.items() if u in flagged and k in bots),
        "bots": sum(1 for k in kind_of.values() if k in bots),
        "flooded_users_flagged": sum(1 for u, k in kind_of.items() if u in flagged and k not in bots),
        "flooded_users": sum(1 for k in kind_of.values() if k not in bots),
        "real_users_flagged": len(flagged & real_users) / len(real_users),
        "real_users": len(real_users),
        "real_events_held": held["real"],
        "flagged_by_reason": run["quality"]["flagged_by_reason"],
    }


def one_at_a_time(args: argparse.Namespace, before: list[EventRecord], stream: list[EventRecord]) -> dict[str, Any]:
    """The guard's verdicts with every event judged on its own: what a trainer whose micro-batches hold one
    event each would keep out (a flagged user's earlier events of the same micro-batch are then never held),
    so the lower bound of the replay's figures, which depend on how many events a micro-batch holds."""
    quality = settings_for(Path("unused"), args).quality
    guard = DataGuard(quality, load_settings().events.types)
    for e in before:
        guard.admit([e])
    held, admitted = Counter(), Counter()
    for e in stream:
        kind = e.context["injected"] if Injected.is_injected(e) else "real"
        (admitted if guard.admit([e]).admitted[0] else held)[kind] += 1
    return {"held": dict(held), "admitted": dict(admitted), "quality": guard.report()}


def real_users_only(args: argparse.Namespace) -> None:
    """The guard alone, with the default settings, over a real dataset's log in time order (no injected
    events): which real users it would flag. Writes ``data_guard_ml-100k.json``."""
    path = args.ml100k or SHARED_DATA / "ml-100k" / "u.data"
    events = sorted((e for _, e in read_ml100k_ratings(path)), key=lambda e: (e.timestamp(0.0), e.user_id))
    records = [EventRecord(n + 1, e.user_id, e.item_id, e.type, e.timestamp(0.0)) for n, e in enumerate(events)]
    guard = DataGuard(load_settings().quality, load_settings().events.types)
    for lo in range(0, len(records), args.online_every):
        guard.admit(records[lo : lo + args.online_every])
    report = guard.report()
    users, flagged = report["users"]["seen"], report["users"]["flagged"]
    print(f"ml-100k: {flagged} of {users} users flagged ({flagged / users:.2%}), {report['flagged_by_reason']}")
    print(f"events kept out of training: {report['events']['quarantined']} of {report['events']['seen']}")
    out = args.out or ROOT / "benchmarks" / "results" / "data_guard_ml-100k.json"
    write_json(
        out,
        {
            "benchmark": "data_guard",
            "dataset": "ml-100k",
            "micro_batch_events": args.online_every,
            "users_flagged": flagged / users,
            "report": report,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bots-per-kind", type=int, default=5)
    parser.add_argument("--floods-per-kind", type=int, default=10)
    parser.add_argument("--online-every", type=int, default=1000)
    parser.add_argument("--coordinated", action="store_true", help="every hammer bot pushes the same item")
    parser.add_argument("--train-seconds", type=float, default=120.0)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="tiny shop and model; figures mean nothing")
    parser.add_argument("--real-users", choices=["ml-100k"], default=None, help="only the guard over a real log")
    parser.add_argument("--ml100k", type=Path, default=None, help="u.data of ML-100K (default: shared/data)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.real_users:
        real_users_only(args)
        return
    if args.quick:
        args.users, args.items, args.bots_per_kind, args.floods_per_kind = 150, 60, 1, 2
        args.train_seconds, args.epochs, args.online_every = 10.0, 2, 500
    shop = generate_shop(n_users=args.users, n_items=args.items, seed=args.seed)
    real = [EventRecord(0, e.user_id, e.item_id, e.type, float(e.ts)) for e in shop.events]
    t_cut = cut_time(real, ReplayOptions(cut=0.8))
    before = [e for e in real if e.ts < t_cut]
    after = [e for e in real if e.ts >= t_cut]
    items = [i.item_id for i in shop.items]
    mixed = inject(after, items, t_cut, args.bots_per_kind, args.floods_per_kind, args.seed, args.coordinated)
    seen: dict[str, set[str]] = {}
    for e in before:
        seen.setdefault(e.user_id, set()).add(e.item_id)
    real_users = {e.user_id for e in real} - set(mixed.kind_of)
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="freshrec-guard-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        training = train_at_cut(work / "base", args, shop.items, before)
        training["wall_seconds"] = round(time.perf_counter() - t0, 1)
        print(f"trained at the cut: {training}")
        for name, stream, guarded in (
            ("clean", after, True),
            ("guarded", mixed.events, True),
            ("unguarded", mixed.events, False),
        ):
            runs[name] = replay_run(name, work / "base", work, args, seen, stream, guarded)
            print(f"{name}: NDCG@10 {runs[name]['ndcg@10']} in {runs[name]['seconds']} s")
    quarantine = quarantine_figures(runs["guarded"], mixed.kind_of, real_users)
    per_event = quarantine_figures(one_at_a_time(args, before, mixed.events), mixed.kind_of, real_users)
    clean_flagged = {u["user_id"] for u in runs["clean"]["quality"]["flagged_users"]}
    ndcg = {name: run["ndcg@10"]["live+online"] for name, run in runs.items()}
    change = {name: ndcg[name] / ndcg["clean"] - 1 for name in ("guarded", "unguarded")}
    assert runs["guarded"]["users"] == runs["clean"]["users"] == runs["unguarded"]["users"]  # the same queries
    paired = {
        name: paired_difference(np.array(runs[name]["gains"]), np.array(runs["clean"]["gains"]), runs["clean"]["users"])
        for name in ("guarded", "unguarded")
    }
    paired["guarded_vs_unguarded"] = paired_difference(
        np.array(runs["guarded"]["gains"]), np.array(runs["unguarded"]["gains"]), runs["clean"]["users"]
    )
    for run in runs.values():
        del run["users"], run["gains"]
    verdict = {
        "bot_events_quarantined": quarantine["bot_events_quarantined"] >= TARGETS["bot_events_quarantined"],
        "real_users_flagged": quarantine["real_users_flagged"] < TARGETS["real_users_flagged"],
        "guarded_ndcg_vs_clean": abs(change["guarded"]) <= TARGETS["guarded_ndcg_vs_clean"],
    }
    print(f"{'run':<10} {'live+online NDCG@10':>20} {'vs clean':>9} {'live-sequences':>15}")
    for name, run in runs.items():
        rel = f"{change[name]:+.1%}" if name in change else "-"
        print(f"{name:<10} {ndcg[name]:>20.4f} {rel:>9} {run['ndcg@10']['live-sequences']:>15.4f}")
    for name, p in paired.items():
        lo, hi = p["relative_ci95"]
        print(f"  {name}: {p['relative']:+.1%} (95% interval {lo:+.1%} to {hi:+.1%}, {p['users']:.0f} users)")
    print(f"bot events quarantined {quarantine['bot_events_quarantined']:.1%} per kind {quarantine['per_kind']}")
    print(f"  one event at a time {per_event['bot_events_quarantined']:.1%} per kind {per_event['per_kind']}")
    print(f"real users flagged {quarantine['real_users_flagged']:.2%} (clean run: {len(clean_flagged)})")
    print(f"targets met: {verdict}")
    out = args.out or ROOT / "benchmarks" / "results" / ("data_guard_quick.json" if args.quick else "data_guard.json")
    write_json(
        out,
        {
            "benchmark": "data_guard",
            "protocol": "streaming replay (prequential)",
            "dataset": {"generator": "synthetic shop", "users": args.users, "items": args.items, "seed": args.seed},
            "args": vars(args),
            "cut_ts": t_cut,
            "events": {"before_cut": len(before), "after_cut": len(after), "injected": len(mixed.events) - len(after)},
            "injected_users": Counter(mixed.kind_of.values()),
            "training": training,
            "runs": runs,
            "ndcg@10_live+online": ndcg,
            "change_vs_clean": change,
            "paired_change": paired,
            "quarantine": quarantine,
            "quarantine_one_event_at_a_time": per_event,
            "clean_run_users_flagged": len(clean_flagged),
            "targets": TARGETS,
            "met": verdict,
        },
    )


if __name__ == "__main__":
    main()

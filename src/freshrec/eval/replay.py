"""Streaming replay (prequential): what reacting to every event in real time buys.

Protocol, as in Monolith's evaluation and river's progressive validation: events are replayed in time
order. A model is trained on the events before a cut (by default the first 80% of the time span). Then,
for every later event, each strategy is first asked for the user's top-K and scored against the item the
user actually chose; only then is the event ingested. So no strategy ever sees the event it is scored on.

Strategies, on identical events:

* ``static``: the model and every user's list frozen at the cut: the nightly batch job.
* ``live-sequences``: the same weights ranking on their own, each user's sequence (and seen items) updated
  per event.
* ``served``: what freshrec serves with those weights: the candidates of every live source (the transformer,
  co-occurrence, session-kNN, trending) ordered by the version's ranker, fitted at the cut.
* ``trending``: time-decayed popularity, updated per event, the user's seen items excluded.
* ``co-occurrence``: item-to-item followers counted live (:class:`~freshrec.candidates.cooccurrence.CoOccurrence`).
* ``session-knn``: items from the sequences of users who recently had the same items
  (:class:`~freshrec.candidates.sknn.SessionKNN`).
* ``live+online``: live sequences plus the online trainer, catching up every ``online_every`` events
  (micro-batches through the quality gate; accepted versions are swapped in); ``served+online``: the same
  versions behind the ranker.
* ``live+periodic-retrain`` (optional): live sequences plus a full retrain every ``retrain_every`` events.

Scored events: positive events whose item the user had not interacted with before (repeat actions on a
seen item cannot be recommended, since seen items are excluded, and would score zero for everyone).
Each strategy's figures are also split by the chosen item: ``new items`` (no event before the cut, so the
model at the cut never trained on it: where a new item's row, and so online training, matters most) and
``known items``.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from tqdm.auto import tqdm

from freshrec.candidates.cooccurrence import CoOccurrence
from freshrec.candidates.sknn import SessionKNN
from freshrec.config import Settings
from freshrec.engine import build_engine
from freshrec.eval.baselines import LiveSource
from freshrec.eval.strategies import LiveSequences, LiveTrending, OnlineLearning, PeriodicRetrain, Served, StaticModel
from freshrec.metrics import summarize
from freshrec.pipeline import train_and_publish
from freshrec.schema import EventRecord

PROTOCOL = "streaming replay (prequential)"


class Strategy(Protocol):
    """A way of producing lists during the replay. ``learn`` sees each event after it was scored."""

    name: str

    def recommend(self, user_id: str, k: int) -> list[str]: ...

    def learn(self, event: EventRecord) -> None: ...


@dataclass
class ReplayOptions:
    cut: float = 0.8
    cut_by: Literal["time", "events"] = "time"
    k: int = 10
    windows: int = 10
    max_events: int | None = None
    online_every: int | None = 1000  # events between online-trainer catch-ups (None: no online strategy)
    retrain_every: int | None = None  # events between full retrains (None: no periodic-retrain strategy)

    def __post_init__(self) -> None:
        if not 0 < self.cut < 1:
            raise ValueError(f"cut must be between 0 and 1, got {self.cut}")
        if self.k < 1 or self.windows < 1:
            raise ValueError("k and windows must be at least 1")


@dataclass
class Outcome:
    """One scored event: when it happened and the rank each strategy gave its item (k = missed).

    ``new_item``: the item had no event before the cut (the model at the cut never trained on it).
    """

    ts: float
    ranks: dict[str, int]
    new_item: bool = False


def cut_time(events: Sequence[EventRecord], options: ReplayOptions) -> float:
    """The cut: a fraction of the time span, or of the events when ``cut_by="events"``."""
    if options.cut_by == "events":
        return events[min(len(events) - 1, int(options.cut * len(events)))].ts
    first, last = events[0].ts, events[-1].ts
    return first + options.cut * (last - first)


def rank_in(items: list[str], target: str, k: int) -> int:
    """0-based position of ``target`` in a top-k list, or ``k`` when it is not there."""
    try:
        return items.index(target, 0, k)
    except ValueError:
        return k


def prequential(
    stream: Sequence[EventRecord],
    strategies: Sequence[Strategy],
    ingest: Callable[[EventRecord], None],
    k: int,
    negative_types: frozenset[str],
    seen: dict[str, set[str]],
    progress: bool = False,
    known_items: frozenset[str] | None = None,
    scored: Callable[[EventRecord], bool] | None = None,
) -> Iterator[Outcome]:
    """Score-then-learn over ``stream``; yields one :class:`Outcome` per scored event.

    ``ingest`` is the system taking the event (durable append + live state); ``seen`` holds what each
    user had done before the stream starts and is updated as it goes. ``known_items``: the items with
    events before the stream (default: every item in ``seen``); outcomes on other items are ``new_item``.
    ``scored``: events it refuses (e.g. injected bot traffic) are ingested and learned but neither scored
    nor added to ``seen``, so streams with and without them are scored on the same events.
    """
    if known_items is None:
        known_items = frozenset(item for items in seen.values() for item in items)
    for event in tqdm(stream, desc="replaying", unit="ev", disable=not progress):
        if scored is None or scored(event):
            user_seen = seen.setdefault(event.user_id, set())
            if event.type not in negative_types and event.item_id not in user_seen:
                yield Outcome(
                    event.ts,
                    {s.name: rank_in(s.recommend(event.user_id, k), event.item_id, k) for s in strategies},
                    new_item=event.item_id not in known_items,
                )
            user_seen.add(event.item_id)
        ingest(event)
        for s in strategies:
            s.learn(event)


def summarize_outcomes(outcomes: list[Outcome], names: list[str], k: int, windows: int) -> dict[str, Any]:
    """Overall, per-window (equal time spans) and new- / known-item HR/NDCG/MRR@k per strategy."""
    result: dict[str, Any] = {}
    if not outcomes:
        empty = summarize(np.zeros(0), [k])
        return {name: {"overall": empty, "windows": [], "new_items": empty, "known_items": empty} for name in names}
    ts = np.array([o.ts for o in outcomes])
    new = np.array([o.new_item for o in outcomes])
    edges = np.linspace(ts[0], ts[-1], windows + 1)
    which = np.clip(np.searchsorted(edges, ts, side="right") - 1, 0, windows - 1)
    for name in names:
        ranks = np.array([o.ranks[name] for o in outcomes])
        per_window = []
        for w in range(windows):
            mask = which == w
            stats = summarize(ranks[mask], [k])
            per_window.append({"start_ts": float(edges[w]), "end_ts": float(edges[w + 1]), **stats})
        cumulative = np.cumsum(np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)) / np.arange(1, len(ranks) + 1)
        result[name] = {
            "overall": summarize(ranks, [k]),
            "windows": per_window,
            "new_items": summarize(ranks[new], [k]),
            "known_items": summarize(ranks[~new], [k]),
            "cumulative_ndcg": cumulative[np.linspace(0, len(ranks) - 1, min(200, len(ranks))).astype(int)].tolist(),
        }
    return result


@dataclass
class ReplayReport:
    """Everything a replay measured; ``to_dict`` is what ``--out`` writes as JSON."""

    dataset: str
    options: ReplayOptions
    cut_ts: float
    events_total: int
    events_before_cut: int
    events_replayed: int
    events_scored: int
    training: dict[str, Any]
    strategies: dict[str, Any]
    ingest_ms: dict[str, float]
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)
    protocol: str = PROTOCOL

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)

    def to_markdown(self) -> str:
        k = self.options.k
        lines = [
            f"**{self.dataset}** — {self.protocol}; cut at {self.options.cut:.0%} of {self.options.cut_by}; "
            f"{self.events_before_cut:,} events before the cut, {self.events_replayed:,} replayed, "
            f"{self.events_scored:,} scored (new-to-user items); K = {k}",
            "",
            f"| strategy | HR@{k} | NDCG@{k} | MRR@{k} | NDCG@{k}, new items | NDCG@{k}, known items |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, res in self.strategies.items():
            o, new, known = res["overall"], res["new_items"], res["known_items"]
            lines.append(
                f"| {name} | {o[f'hr@{k}']:.4f} | {o[f'ndcg@{k}']:.4f} | {o[f'mrr@{k}']:.4f} "
                f"| {new[f'ndcg@{k}']:.4f} | {known[f'ndcg@{k}']:.4f} |"
            )
        first = next(iter(self.strategies.values()), None)
        if first is not None:
            lines.append("")
            lines.append(
                f"New items (no event before the cut): {first['new_items']['n']:,} of the "
                f"{self.events_scored:,} scored events."
            )
        online = self.details.get("live+online")
        if online:
            older = online["older_holdout_ndcg@10"]
            lines.append("")
            lines.append(
                f"live+online: {online['published_versions']} versions published (gate accepted "
                f"{online['gate']['accepted']}, rejected {online['gate']['rejected']}); older-holdout "
                f"NDCG@10 {older['before']:.4f} before, {older['after']:.4f} after (forgetting)"
            )
            for metric, change in online.get("older_holdout_change", {}).items():
                lo, hi = change["relative_ci95"]
                lines.append(
                    f"- older-holdout {metric} change: {change['relative']:+.1%} "
                    f"(95% interval {lo:+.1%} to {hi:+.1%}, {change['users']:.0f} users)"
                )
        return "\n".join(lines) + "\n"


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": math.nan, "p99": math.nan}
    arr = np.array(values) * 1000
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)), "mean": float(arr.mean())}


def run_replay(
    events: Sequence[EventRecord],
    settings: Settings,
    options: ReplayOptions | None = None,
    items: Sequence[Any] = (),
    dataset: str = "events",
    work_dir: Path | None = None,
    progress: bool = True,
) -> ReplayReport:
    """Train at the cut, then replay the rest score-then-learn; see the module docstring.

    ``events`` must be in time order; ``items`` (``ItemIn``) are loaded into the catalogue first.
    """
    options = options or ReplayOptions()
    if len(events) < 10:
        raise ValueError("a replay needs at least 10 events")
    started = time.perf_counter()
    t_cut = cut_time(events, options)
    before = [e for e in events if e.ts < t_cut]
    after = [e for e in events if e.ts >= t_cut][: options.max_events]
    if not before or not after:
        raise ValueError(f"the cut at {options.cut} leaves no events on one side")
    with tempfile.TemporaryDirectory(prefix="freshrec-replay-", dir=work_dir) as tmp:
        # The replay measures recommendation quality, not durability: skip the fsync per event. The live
        # item graph is kept whatever serving.ranker says: the served strategies and the baselines read it.
        # Stream time, not wall time, drives the replay: trending is recomputed for every event.
        run_settings = settings.model_copy(
            update={
                "serving": settings.serving.model_copy(update={"ranker": True}),
                "storage": settings.storage.model_copy(
                    update={
                        "data_dir": Path(tmp),
                        "sqlite_synchronous": "NORMAL",
                        "event_log_url": None,
                        "catalog_url": None,
                        "model_dir": None,
                    }
                ),
            }
        )
        engine = build_engine(run_settings, load_model=False, trending_refresh_s=0.0)
        try:
            batch = settings.events.max_batch
            for start in range(0, len(items), batch):
                engine.upsert_items(list(items[start : start + batch]))
            for start in range(0, len(before), 5000):
                engine.append_records(
                    [
                        EventRecord(0, e.user_id, e.item_id, e.type, e.ts, e.value, None, e.context)
                        for e in before[start : start + 5000]
                    ]
                )
            report = train_and_publish(engine.stores, holdout="valid", progress=progress)
            engine.load_model()
            negative = frozenset(settings.events.negative_types)
            seen: dict[str, set[str]] = {}
            for e in before:
                seen.setdefault(e.user_id, set()).add(e.item_id)
            strategies: list[Strategy] = [StaticModel(engine, options.k), LiveSequences(engine), Served(engine)]
            if options.online_every:
                online = OnlineLearning(engine, options.online_every)
                strategies += [online, online.served]
            if options.retrain_every:
                strategies.append(PeriodicRetrain(engine, options.retrain_every, Path(tmp)))
            strategies += [
                LiveTrending(engine),
                LiveSource(engine, CoOccurrence(engine.state)),
                LiveSource(engine, SessionKNN(engine.state)),
            ]
            lags: list[float] = []

            def ingest(e: EventRecord) -> None:
                t0 = time.perf_counter()
                engine.append_records([EventRecord(0, e.user_id, e.item_id, e.type, e.ts, e.value, None, e.context)])
                lags.append(time.perf_counter() - t0)

            # ``seen`` holds every pre-cut event, so it also tells prequential which items are known
            outcomes = list(prequential(after, strategies, ingest, options.k, negative, seen, progress))
            details = {s.name: s.summary() for s in strategies if hasattr(s, "summary")}
        finally:
            engine.close()
    fit = report.fit
    return ReplayReport(
        dataset=dataset,
        options=options,
        cut_ts=t_cut,
        events_total=len(events),
        events_before_cut=len(before),
        events_replayed=len(after),
        events_scored=len(outcomes),
        training={
            "version": report.version,
            "epochs": fit.epochs,
            "best_epoch": fit.best_epoch,
            "seconds": fit.seconds,
            "valid": fit.valid,
        },
        strategies=summarize_outcomes(outcomes, [s.name for s in strategies], options.k, options.windows),
        ingest_ms=_percentiles(lags),
        seconds=time.perf_counter() - started,
        details=details,
    )

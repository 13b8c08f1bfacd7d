"""Cold items: can items the model never trained on be recommended from their content alone?

    .venv/bin/python benchmarks/cold_start.py --quick                                   # tiny shop, seconds
    .venv/bin/python benchmarks/cold_start.py --dataset ml-100k
    .venv/bin/python benchmarks/cold_start.py --dataset ml-latest-small --max-seconds 900
    .venv/bin/python benchmarks/cold_start.py --dataset amazon-musical-instruments
    .venv/bin/python benchmarks/cold_start.py --dataset synthetic-shop
    .venv/bin/python benchmarks/cold_start.py --dataset ml-100k --encoders tfidf --epochs 30 --seed 1

Protocol (seeded, default seed 0):

1. 10% of the items with at least one interaction are picked as cold. Every interaction with a cold item
   is dropped before training; the rest is stored in a fresh data directory and trained with freshrec's
   own pipeline (``train_and_publish``, leave-one-out holdout ``test``). The cold items are upserted into
   the catalogue afterwards, with their content, as new items would arrive.
2. Test points: each user's first interaction with each cold item (at most ``--max-test``, sampled). The
   history is that user's warm interactions strictly earlier in time, encoded by the trained model as
   serving does; points with no such history are skipped.
3. Cold items get rows from: the content mapping (ridge from content into the item table, fitted on warm
   items) with the tfidf and MiniLM encoders; the serving engine's own cold table for the same encoders
   (a check that the product path matches); random rows at the table's scale; and popularity, under which
   every cold item has zero training interactions, so they tie and a seeded random order ranks them.
4. Each point's target is ranked (a) among the cold items only and (b) in the full catalogue: the model's
   scores for every item it has a row for plus the scorer's for cold items, items the user interacted
   with earlier excluded (as serving excludes seen items). HR / NDCG / MRR at 10 and 50. This is the
   pure score ranking: serving's exploration slot (``content.exploration_slots``) is not applied (see 6).
5. Upsert to recommendable: new items (copies of cold items' content under new ids) are upserted one at
   a time into the engine serving the trained version; the call encodes and maps the item, and the item
   must be in the serving cold table when it returns. p50 / p99 of the call, per encoder.
6. Exploration (``--exploration-slots 0,1,2``): what giving the last slots of a list to little-exposed items
   costs in NDCG@10 / HR@10 and buys in cold-item coverage, through the real serving path
   (``engine.recommend(user, k=10)``). Each sampled user (``--exploration-users``, default 2000) gets one
   target: their first new item after the history the model trained on (the held-out last warm entry or a
   cold item, whichever comes first). A second data directory holds every warm event except the sampled
   users' from their target on, so each user's state is exactly their (warm) history before the target; it
   serves the trained version, with the encoder fitted before the cold items arrived, as in the first row
   of 4. Cold items' interactions are never ingested: they just arrived, so their exposure is 0. One engine
   per ``content.exploration_slots`` value; metrics over all targets and over cold targets, coverage (cold
   items in at least one list) and the share of list slots holding cold items.

Writes ``benchmarks/results/cold_start_<dataset>.json`` (``--out`` to override) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from freshrec.config import Settings, load_settings
from freshrec.content.document import has_content
from freshrec.content.encoders import MiniLMEncoder
from freshrec.content.mapping import ContentMapping
from freshrec.datasets.importer import read_rows
from freshrec.datasets.synthetic import generate_shop
from freshrec.datasets.tabular import open_text
from freshrec.engine import Engine, build_engine
from freshrec.metrics import summarize
from freshrec.model.evaluate import rank_of_targets
from freshrec.pipeline import train_and_publish
from freshrec.schema import EventIn, ItemIn
from freshrec.sequence import UserSequence
from freshrec.serving_model import ServingModel
from machine import ROOT, SHARED_DATA, write_json
from offline_quality import SYNTHETIC, parse_overrides

DATA_DIRS = {  # default directory under shared/data
    "ml-100k": "ml-100k",
    "ml-latest-small": "ml-latest-small",
    "amazon-musical-instruments": "amazon-musical-instruments-5core",
}
KS = (10, 50)
BATCH = 512
MAX_TEXT = 100_000  # ItemIn.text's limit
EXPLORATION_K = 10  # list length of the exploration measurement (serving's default_k)


@dataclass
class Dataset:
    name: str
    items: list[ItemIn]
    events: list[EventIn]  # time-ordered (stable)
    notes: list[str] = field(default_factory=list)


@dataclass
class TestPoints:
    """One row per (user, cold item) first interaction that has warm history before it."""

    rows: list[np.ndarray]  # model rows of the warm history, oldest first
    types: list[np.ndarray]  # engine type codes of that history
    target: np.ndarray  # [P] position of the target in the cold list
    seen_cold: list[np.ndarray]  # cold positions the user interacted with strictly earlier
    candidates_total: int  # before sampling
    skipped_no_history: int

    def __len__(self) -> int:
        return len(self.target)


# ---- data ---------------------------------------------------------------------------------------------


def _rows(path: Path, kind: str) -> list[Any]:
    if not path.is_file():
        raise SystemExit(f"missing {path}")
    return read_rows(path, kind=kind, progress=False)[1]  # type: ignore[arg-type]


def amazon_items(path: Path) -> list[ItemIn]:
    """Item content for the Amazon 5-core dump, which has no product metadata: every review's summary and
    text aggregated per item (oldest first; summaries first, since MiniLM reads only ~256 tokens)."""
    reviews: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
    with open_text(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                reviews[r["asin"]].append(
                    (float(r.get("unixReviewTime") or 0), r.get("summary") or "", r.get("reviewText") or "")
                )
    items = []
    for asin, rs in sorted(reviews.items()):
        rs.sort(key=lambda r: r[0])
        summaries = ". ".join(s.strip().rstrip(".") for _, s, _ in rs if s.strip())
        texts = " ".join(t.strip() for _, _, t in rs if t.strip())
        text = f"{summaries}. {texts}".strip(". ")[:MAX_TEXT]
        items.append(ItemIn(item_id=asin, text=text or None))
    return items


def load_dataset(name: str, data_dir: Path) -> Dataset:
    if name in SYNTHETIC:
        shop = generate_shop(**SYNTHETIC[name])
        return Dataset(name, shop.items, shop.events, ["content: the generator's title, text, category, price"])
    if name == "ml-100k":
        items, events = _rows(data_dir / "u.item", "items"), _rows(data_dir / "u.data", "events")
        notes = ["content: title + genres (+ year attribute) from u.item"]
    elif name == "ml-latest-small":
        # freshrec's movies.csv reader joins tags.csv from the same directory into each movie's text.
        items, events = _rows(data_dir / "movies.csv", "items"), _rows(data_dir / "ratings.csv", "events")
        tagged = sum(1 for it in items if it.text)
        if (data_dir / "tags.csv").is_file() and not tagged:
            raise SystemExit("tags.csv is there but no movie got tag text: the movies.csv reader changed")
        notes = [f"content: title + genres (+ year) from movies.csv, user tags from tags.csv as text ({tagged} movies)"]
    elif name == "amazon-musical-instruments":
        path = data_dir / "Musical_Instruments.zip"
        events, items = _rows(path, "events"), amazon_items(path)
        notes = [
            "content: review summaries + texts aggregated per item (the dump has no titles or categories)",
            "optimistic: a cold item's text includes the reviews of the very users whose interactions are "
            "test points (a truly new item has no reviews yet)",
        ]
    else:
        raise SystemExit(f"unknown dataset {name}")
    order = sorted(range(len(events)), key=lambda i: (events[i].timestamp(0.0), i))
    return Dataset(name, items, [events[i] for i in order], notes)


def pick_cold(events: Sequence[EventIn], fraction: float, seed: int) -> set[str]:
    interacted = sorted({e.item_id for e in events})
    n = max(1, round(fraction * len(interacted)))
    rng = np.random.default_rng(seed)
    return {interacted[i] for i in rng.choice(len(interacted), size=n, replace=False)}


def store(engine: Engine, items: Sequence[ItemIn], events: Sequence[EventIn]) -> None:
    step = engine.settings.events.max_batch
    for i in range(0, len(items), step):
        engine.upsert_items(items[i : i + step])
    for i in range(0, len(events), step):
        engine.ingest(events[i : i + step])


# ---- test points ----------------------------------------------------------------------------------------


def test_points(
    engine: Engine,
    serving: ServingModel,
    events: Sequence[EventIn],
    cold_pos_of: dict[int, int],
    max_test: int,
    rng: np.random.Generator,
) -> tuple[TestPoints, np.ndarray]:
    """Test points, plus warm interaction counts per model row (the popularity baseline's scores)."""
    types = engine.types
    idx = engine.catalog.internal_ids([e.item_id for e in events], create=True)
    seqs: dict[str, UserSequence] = {}
    collapse = engine.settings.state.collapse_repeats
    for e, i in zip(events, idx, strict=True):
        # The same rule live state uses, so histories are what serving would see.
        seqs.setdefault(e.user_id, UserSequence(None, collapse)).add(
            i, types.code.get(e.type, 0), e.timestamp(0.0), e.type in types.negative
        )
    counts = np.zeros(serving.num_rows + 1, dtype=np.int64)
    rows_l, types_l, targets, seen_l = [], [], [], []
    skipped = 0
    for seq in seqs.values():
        items, codes, ts = seq.item_array(), seq.type_array(), np.frombuffer(seq.ts, dtype=np.float64)
        rows = serving.rows(items)
        np.add.at(counts, rows[rows > 0], 1)
        met: set[int] = set()
        for j, item in enumerate(items.tolist()):
            pos = cold_pos_of.get(item)
            if pos is None or item in met:
                continue  # warm, or a repeat: repeat consumption is another task
            met.add(item)
            earlier = ts[:j] < ts[j]
            warm = earlier & (rows[:j] > 0)
            if not warm.any():
                skipped += 1
                continue
            rows_l.append(rows[:j][warm])
            types_l.append(codes[:j][warm])
            targets.append(pos)
            seen_l.append(np.array([cold_pos_of[i] for i in items[:j][earlier] if i in cold_pos_of], dtype=np.int64))
    total = len(targets)
    keep = np.sort(rng.choice(total, size=max_test, replace=False)) if total > max_test else np.arange(total)
    points = TestPoints(
        [rows_l[i] for i in keep],
        [types_l[i] for i in keep],
        np.asarray(targets, dtype=np.int64)[keep] if total else np.zeros(0, dtype=np.int64),
        [seen_l[i] for i in keep],
        total,
        skipped,
    )
    counts[0] = 0
    return points, counts


def user_vectors(serving: ServingModel, points: TestPoints) -> torch.Tensor:
    spans = range(0, len(points), BATCH)
    out = [serving.encode(points.rows[i : i + BATCH], points.types[i : i + BATCH]) for i in spans]
    return torch.cat(out) if out else torch.zeros(0, serving.dim)


# ---- scoring ----------------------------------------------------------------------------------------------


@dataclass
class Scorer:
    """Scores for a batch of user vectors: warm model rows [B, Nm + 1] (column 0 padding) and cold items [B, M]."""

    name: str
    warm: Callable[[torch.Tensor], torch.Tensor]
    cold: Callable[[torch.Tensor], torch.Tensor]
    note: str = ""


def row_scorer(name: str, table: torch.Tensor, cold_rows: torch.Tensor, ok: np.ndarray, note: str = "") -> Scorer:
    """Model scores for warm items, dot products with ``cold_rows`` for cold ones (-inf where not ``ok``:
    serving has no row for a cold item without content)."""
    blocked = torch.from_numpy(~ok)

    def cold(u: torch.Tensor) -> torch.Tensor:
        s = u @ cold_rows.T
        s[:, blocked] = float("-inf")
        return s

    return Scorer(name, lambda u: u @ table.T, cold, note)


def popularity_scorer(counts: np.ndarray, n_cold: int, rng: np.random.Generator) -> Scorer:
    # Ties (every cold item, and warm items never interacted with) fall in one seeded random order;
    # a fraction below 1 never lifts an item over one with more interactions.
    warm = torch.from_numpy(counts + rng.random(len(counts)) * 0.5).float()
    cold = torch.from_numpy(rng.random(n_cold) * 0.5).float()
    return Scorer(
        "popularity",
        lambda u: warm.expand(len(u), -1),
        lambda u: cold.expand(len(u), -1),
        "cold items have no training interactions: all tie at 0 and are ranked in a seeded random order; "
        "in the full catalogue warm items rank by interaction count, so cold items come last",
    )


def evaluate(scorer: Scorer, users: torch.Tensor, points: TestPoints, num_rows: int) -> dict[str, dict[str, float]]:
    among, full = [], []
    for start in range(0, len(points), BATCH):
        u = users[start : start + BATCH]
        sl = slice(start, start + BATCH)
        cold = scorer.cold(u).float()
        target = torch.from_numpy(points.target[sl])
        seen_cold = points.seen_cold[sl]
        pad = torch.zeros(len(u), 1)
        among.append(rank_of_targets(torch.cat([pad, cold], 1), target + 1, [s + 1 for s in seen_cold]).numpy())
        scores = torch.cat([scorer.warm(u).float(), cold], 1)
        exclude = [np.concatenate([r, s + num_rows + 1]) for r, s in zip(points.rows[sl], seen_cold, strict=True)]
        full.append(rank_of_targets(scores, target + num_rows + 1, exclude).numpy())
    return {"among_cold": summarize(_joined(among), KS), "full_catalogue": summarize(_joined(full), KS)}


def _joined(ranks: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)


def engine_cold_rows(serving: ServingModel, cold_cat: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """The serving engine's own mapped rows for the cold items (what a live request would score)."""
    table = serving.cold
    where = {int(c): i for i, c in enumerate(table.catalog_idx)}
    rows = torch.zeros(len(cold_cat), table.vectors.shape[1])
    ok = np.array([int(c) in where for c in cold_cat], dtype=bool)
    if ok.any():
        rows[torch.from_numpy(ok)] = table.vectors[[where[int(c)] for c in cold_cat[ok]]].float()
    return rows, ok


def upsert_latency(engine: Engine, templates: Sequence[ItemIn], n: int, tag: str) -> dict[str, Any]:
    """Upsert new items one at a time; each must be in the serving cold table when the call returns."""
    ms, recommendable = [], 0
    for k in range(n):
        src = templates[k % len(templates)]
        item = ItemIn(
            item_id=f"coldstart-new-{tag}-{k}",
            title=src.title,
            text=src.text,
            categories=src.categories,
            attributes=src.attributes,
        )
        t0 = time.perf_counter()
        engine.upsert_items([item])
        ms.append((time.perf_counter() - t0) * 1000)
        idx = engine.catalog.internal_id(item.item_id, create=False)
        serving = engine.recommender.serving
        recommendable += bool(serving is not None and idx in set(serving.cold.catalog_idx.tolist()))
    a = np.asarray(ms)
    return {
        "items": n,
        "recommendable_on_return": recommendable,
        "p50_ms": float(np.percentile(a, 50)) if n else None,
        "p99_ms": float(np.percentile(a, 99)) if n else None,
        "max_ms": float(a.max()) if n else None,
        "mean_ms": float(a.mean()) if n else None,
    }


# ---- exploration ------------------------------------------------------------------------------------------


@dataclass
class NextItems:
    """One target per sampled user: the first item new to them after the history the model trained on."""

    cut: dict[str, int]  # user -> position in Dataset.events of the target (their events from there are withheld)
    target: dict[str, str]  # user -> target item id
    eligible: int  # users with such a target, before sampling


def next_items(
    events: Sequence[EventIn],
    cold_ids: set[str],
    negative: frozenset[str],
    collapse: bool,
    max_users: int,
    rng: np.random.Generator,
) -> NextItems:
    """Pick each user's next item after their trained history, and sample users.

    Leave-one-out (``holdout="test"``) trains on every warm sequence entry but the last two (the second
    last is validation), and only for users with at least 3 entries (shorter ones are trained on whole).
    So for such a user everything after the second-last entry is untrained: the last warm entry and any
    cold interaction. The target is the first interaction there with an item the user never touched before
    (repeat consumption is another task; serving excludes seen items anyway), so warm and cold targets come
    in the proportion they have in the data.
    """
    by_user: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(events):
        by_user[e.user_id].append(i)
    candidates: dict[str, tuple[int, str]] = {}
    for user, positions in by_user.items():
        # Warm sequence entries as the training sequences build them (UserSequence's rules on time-ordered
        # events): negatives are no entry, consecutive events on one item are one entry when collapsing.
        entries: list[tuple[str, int]] = []  # (item, position of its last event)
        for i in positions:
            e = events[i]
            if e.item_id in cold_ids or e.type in negative:
                continue
            if collapse and entries and entries[-1][0] == e.item_id:
                entries[-1] = (e.item_id, i)
            else:
                entries.append((e.item_id, i))
        if len(entries) < 3:
            continue
        trained_upto = entries[-2][1]
        touched = {events[i].item_id for i in positions if i <= trained_upto}
        for i in positions:
            e = events[i]
            if i > trained_upto and e.type not in negative and e.item_id not in touched:
                candidates[user] = (i, e.item_id)
                break
            touched.add(e.item_id)
    users = sorted(candidates)
    if len(users) > max_users:
        users = [users[j] for j in np.sort(rng.choice(len(users), size=max_users, replace=False))]
    return NextItems({u: candidates[u][0] for u in users}, {u: candidates[u][1] for u in users}, len(candidates))


def exploration(
    args: argparse.Namespace,
    base: Settings,
    overrides: dict[str, dict[str, Any]],
    data: Dataset,
    cold_ids: set[str],
    cold_items: Sequence[ItemIn],
    reference_rows: dict[str, torch.Tensor],
    work: Path,
) -> dict[str, Any]:
    """NDCG@10 / HR@10 of ``engine.recommend`` and cold-item coverage with ``content.exploration_slots`` in
    ``args.exploration_slots``, on an engine whose state holds each sampled user's history before their target.

    The trained engine cannot be reused: its state holds every warm event, targets included (recommend would
    exclude them as seen). So a second data directory gets the same catalogue and every warm event except the
    sampled users' events from their target on, serves the trained version from the same model registry, and
    has the encoder fitted as at training (before the cold items arrived), the cold items upserted after.
    Cold items' interactions are never ingested, as in the rest of the protocol: they just arrived, exposure 0.
    One engine per setting is built on that directory with ``load_settings(content={"exploration_slots": n})``.
    """
    slot_values = [int(s) for s in args.exploration_slots.split(",") if s.strip()]
    if not slot_values:
        return {"skipped": "--exploration-slots is empty"}
    # Its own generator, so adding this measurement leaves the seeded draws of the other results unchanged.
    points = next_items(
        data.events,
        cold_ids,
        frozenset(base.events.negative_types),
        base.state.collapse_repeats,
        args.exploration_users,
        np.random.default_rng([args.seed, 1]),
    )
    if not points.cut:
        return {"skipped": "no user has 3 warm entries and a new item after the second last"}
    eval_dir = work / "exploration"

    def settings_for(slots: int) -> Settings:
        storage = {
            "data_dir": eval_dir,
            "model_dir": base.storage.resolved_model_dir(),  # the trained version, shared
            "sqlite_synchronous": "NORMAL",  # a throwaway directory: skip the per-commit fsync
        }
        content = {**overrides.get("content", {}), "exploration_slots": slots}
        return load_settings(**{**overrides, "storage": storage, "content": content})

    t0 = time.perf_counter()
    engine = build_engine(settings_for(0), load_model=False)
    try:
        warm_items = [it for it in data.items if it.item_id not in cold_ids]
        known = {it.item_id for it in warm_items}
        # Items known only from the withheld events would otherwise be missing from this catalogue.
        extra = sorted({e.item_id for e in data.events if e.item_id not in cold_ids} - known)
        kept = [
            e
            for i, e in enumerate(data.events)
            if e.item_id not in cold_ids and i < points.cut.get(e.user_id, len(data.events))
        ]
        store(engine, [*warm_items, *(ItemIn(item_id=i) for i in extra)], kept)
        try:
            engine.fit_content()  # as train_and_publish does: on the catalogue before the cold items arrive
        except ValueError:
            return {"skipped": "no item has content: nothing is mapped into the cold table"}
        store(engine, cold_items, [])
    finally:
        engine.close()
    setup_s = time.perf_counter() - t0

    k = EXPLORATION_K
    users = sorted(points.cut)
    # Cold items a user met before the target: serving cannot exclude them (the engine never saw those
    # interactions), so slots they take are counted apart.
    met: dict[str, set[str]] = defaultdict(set)
    for i, e in enumerate(data.events):
        if e.item_id in cold_ids and i < points.cut.get(e.user_id, -1):
            met[e.user_id].add(e.item_id)
    is_cold_target = np.array([points.target[u] in cold_ids for u in users], dtype=bool)
    rows: list[dict[str, Any]] = []
    check: dict[str, Any] = {}
    recommendable: set[str] = set()
    for slots in slot_values:
        engine = build_engine(settings_for(slots))  # state rebuilt from the log; the cold table is mapped on load
        try:
            serving = engine.recommender.serving
            assert serving is not None and engine.recommender.content_settings.exploration_slots == slots
            in_table = {engine.catalog.external_id(int(c)): j for j, c in enumerate(serving.cold.catalog_idx)}
            recommendable = {i for i in cold_ids if i in in_table}
            if not check:
                # The same encoder fit and mapping as the trained engine's, so its cold rows should match.
                diffs = [
                    float((serving.cold.vectors[in_table[i]] - row).abs().max())
                    for i, row in reference_rows.items()
                    if i in in_table
                ]
                check = {"cold_rows_compared": len(diffs), "max_abs_diff_vs_trained_engine": max(diffs, default=0.0)}
            ranks = np.full(len(users), k, dtype=np.int64)  # k: not in the list
            shown: set[str] = set()
            slots_total = cold_slots = cold_met = explored = explored_cold = fallback = 0
            t1 = time.perf_counter()
            for j, user in enumerate(users):
                rec = engine.recommend(user, k=k)
                ids = [it.item_id for it in rec.items]
                fallback += rec.source != "model"
                if points.target[user] in ids:
                    ranks[j] = ids.index(points.target[user])
                slots_total += len(ids)
                for it in rec.items:
                    cold = it.item_id in cold_ids
                    if cold:
                        cold_slots += 1
                        cold_met += it.item_id in met[user]
                        shown.add(it.item_id)
                    # Serving names the reason of an item it put in an exploration slot.
                    if it.reason.startswith("exploration slot"):
                        explored += 1
                        explored_cold += cold
            request_ms = (time.perf_counter() - t1) * 1000 / len(users)
        finally:
            engine.close()
        every, cold_t = summarize(ranks, (k,)), summarize(ranks[is_cold_target], (k,))
        warm_t = summarize(ranks[~is_cold_target], (k,))
        any_cold = bool(is_cold_target.any())  # else the cold-target figures are None, not a misleading 0
        rows.append(
            {
                "slots": slots,
                f"ndcg@{k}_all": every[f"ndcg@{k}"],
                f"hr@{k}_all": every[f"hr@{k}"],
                f"hr@{k}_cold_targets": cold_t[f"hr@{k}"] if any_cold else None,
                "cold_coverage": len(shown) / len(cold_ids),
                "cold_slot_share": cold_slots / slots_total if slots_total else 0.0,
                f"ndcg@{k}_cold_targets": cold_t[f"ndcg@{k}"] if any_cold else None,
                f"ndcg@{k}_warm_targets": warm_t[f"ndcg@{k}"],
                f"hr@{k}_warm_targets": warm_t[f"hr@{k}"],
                "cold_items_shown": len(shown),
                "cold_coverage_of_recommendable": len(shown) / len(recommendable) if recommendable else 0.0,
                "cold_slots_on_items_met_before": cold_met,
                "exploration_slots_filled": explored,
                "exploration_slots_cold": explored_cold,
                "list_slots": slots_total,
                "trending_fallback_lists": fallback,
                "recommend_ms_mean": request_ms,
            }
        )
    return {
        "k": k,
        "design": (
            "a second data directory holds every warm event except each sampled user's events from their target "
            "on, and serves the trained version; the target is the user's first new item after the history the "
            "model trained on (the held-out last warm entry or a cold item, whichever comes first); lists are "
            "engine.recommend(user, k) with seen items excluded; cold items' interactions are never ingested "
            "(they just arrived: exposure 0)"
        ),
        "exploration_max_interactions": base.content.exploration_max_interactions,
        "users_eligible": points.eligible,
        "users_sampled": len(users),
        "targets_cold": int(is_cold_target.sum()),
        "cold_items": len(cold_ids),
        "cold_items_recommendable": len(recommendable),
        "cold_table_check": check,
        "setup_seconds": setup_s,
        "rows": rows,
    }


# ---- the run ------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, data_dir: Path, work: Path) -> dict[str, Any]:
    progress = not args.quick
    overrides = parse_overrides(args.overrides)
    train = overrides.setdefault("train", {})
    if args.epochs is not None:
        train["epochs"] = args.epochs
    if args.max_seconds is not None:
        train["max_seconds"] = args.max_seconds
    overrides.setdefault("content", {}).setdefault("enabled", True)
    settings = load_settings(storage={"data_dir": work}, **overrides)
    notes: list[str] = []

    t0 = time.perf_counter()
    data = load_dataset(args.dataset, data_dir)
    notes += data.notes
    cold_ids = pick_cold(data.events, args.cold_fraction, args.seed)
    warm_events = [e for e in data.events if e.item_id not in cold_ids]
    cold_items = [it for it in data.items if it.item_id in cold_ids]
    known = {it.item_id for it in data.items}
    cold_items += [ItemIn(item_id=i) for i in sorted(cold_ids - known)]  # rated but not in the item file
    load_s = time.perf_counter() - t0

    engine = build_engine(settings, load_model=False)
    try:
        t0 = time.perf_counter()
        store(engine, [it for it in data.items if it.item_id not in cold_ids], warm_events)
        import_s = time.perf_counter() - t0
        print(f"{args.dataset}: {len(data.events)} events, {len(cold_ids)} cold items; training on {len(warm_events)}")
        # train_and_publish builds the model before the trainer seeds torch, so the initial weights would
        # differ from run to run; seeding here makes a run repeatable.
        torch.manual_seed(settings.train.seed)
        report = train_and_publish(engine.stores, holdout="test", progress=progress)
        # New items arrive after training, with content; the encoder fitted at training time encodes them.
        store(engine, cold_items, [])
        engine.load_model()
        serving = engine.recommender.serving
        assert serving is not None
        table = serving.model.item_emb.weight.detach().float()
        num_rows = serving.num_rows

        cold_cat = np.asarray(engine.catalog.internal_ids([it.item_id for it in cold_items], create=False))
        cold_pos_of = {int(c): i for i, c in enumerate(cold_cat)}
        cold_has = np.array([has_content(it) for it in cold_items], dtype=bool)
        rng = np.random.default_rng(args.seed)
        points, counts = test_points(engine, serving, data.events, cold_pos_of, args.max_test, rng)
        if not len(points):
            raise SystemExit("no test point: no cold interaction has warm history before it")
        users = user_vectors(serving, points)
        warm_rows = np.flatnonzero(counts > 0)
        median_norm = float(np.median(table[warm_rows].norm(dim=1).numpy()))

        results: dict[str, dict[str, Any]] = {}
        scorer_notes: dict[str, str] = {}

        def record(scorer: Scorer) -> None:
            results[scorer.name] = evaluate(scorer, users, points, num_rows)
            if scorer.note:
                scorer_notes[scorer.name] = scorer.note

        rows, ok = engine_cold_rows(serving, cold_cat)
        arrival_rows = {cold_items[j].item_id: rows[j] for j in np.flatnonzero(ok)}  # the exploration check
        record(
            row_scorer(
                f"{settings.content.encoder} [engine, fit before arrival]",
                table,
                rows,
                ok,
                "the serving cold table right after training: the encoder fitted on the catalogue before the "
                "cold items arrived, mapping fitted on every model row with content",
            )
        )

        encoders = [e for e in args.encoders.split(",") if e]
        mapping_reports: dict[str, Any] = {}
        upserts: dict[str, Any] = {}
        templates = [it for it in cold_items if has_content(it)] or cold_items
        for name in encoders:
            if name == "minilm" and not MiniLMEncoder.available():
                notes.append("minilm skipped: the freshrec[text] extra is not installed")
                continue
            print(f"fitting the {name} encoder on {len(engine.catalog)} items ...")
            t0 = time.perf_counter()
            engine.fit_content(encoder=name, progress=progress)  # every item, cold ones included
            fit_s = time.perf_counter() - t0
            assert engine.content is not None
            vec, has = engine.content.vectors(np.arange(len(engine.catalog) + 1))
            warm_cat = serving.catalog_of_row[warm_rows]
            fit_on = has[warm_cat]
            t0 = time.perf_counter()
            mapping = ContentMapping(seed=args.seed)
            mapping.fit(vec[warm_cat[fit_on]], table[warm_rows[fit_on]].numpy())
            map_s = time.perf_counter() - t0
            ok = has[cold_cat]
            pred = torch.zeros(len(cold_cat), table.shape[1])
            if ok.any():
                pred[torch.from_numpy(ok)] = torch.from_numpy(mapping.predict(vec[cold_cat[ok]]))
            record(
                row_scorer(
                    f"{name}",
                    table,
                    pred,
                    ok,
                    f"{name} fitted on all items; ridge mapping fitted on the warm items' learned rows",
                )
            )
            rows, ok_engine = engine_cold_rows(serving, cold_cat)
            record(
                row_scorer(
                    f"{name} [engine]",
                    table,
                    rows,
                    ok_engine,
                    "the serving cold table after engine.fit_content: the product path",
                )
            )
            mapping_reports[name] = {
                **asdict(mapping.report),
                "content_dim": int(vec.shape[1]),
                "fit_encode_seconds": fit_s,
                "mapping_seconds": map_s,
            }
            upserts[name] = upsert_latency(engine, templates, args.upsert_items, name)

        noise = torch.from_numpy(rng.standard_normal((len(cold_cat), table.shape[1]))).float()
        random_rows = torch.nn.functional.normalize(noise, dim=1) * median_norm
        record(
            row_scorer(
                "random rows",
                table,
                random_rows,
                np.ones(len(cold_cat), dtype=bool),
                "Gaussian directions at the median norm of the warm rows",
            )
        )
        record(popularity_scorer(counts, len(cold_cat), rng))
    finally:
        engine.close()

    t0 = time.perf_counter()
    explored = exploration(args, settings, overrides, data, cold_ids, cold_items, arrival_rows, work)
    explore_s = time.perf_counter() - t0
    fit = report.fit
    users_total = len({e.user_id for e in data.events})
    return {
        "dataset": args.dataset,
        "protocol": "cold items: 10% of interacted items held out of training, first interaction per (user, item)",
        "data": {
            "users": users_total,
            "items": len(data.items),
            "events": len(data.events),
            "warm_events": len(warm_events),
            "cold_items": len(cold_items),
            "cold_items_without_content": int((~cold_has).sum()),
            "test_points_available": points.candidates_total,
            "test_points_used": len(points),
            "skipped_no_warm_history": points.skipped_no_history,
            "model_rows": num_rows,
        },
        "results": results,
        "scorer_notes": scorer_notes,
        "mapping": mapping_reports,
        "upsert_to_recommendable": upserts,
        "exploration": explored,
        "warm_leave_one_out": {k: report.metrics[k] for k in ("model", "popularity") if k in report.metrics},
        "training": {k: v for k, v in fit.to_dict().items() if k != "history"},
        "timing_seconds": {"load": load_s, "import": import_s, "train": fit.seconds, "exploration": explore_s},
        "notes": notes,
        "settings": {s: getattr(settings, s).model_dump() for s in ("model", "train", "content")},
    }


def print_table(result: dict[str, Any]) -> None:
    d = result["data"]
    print(
        f"\n### {result['dataset']}: {d['cold_items']} cold items, {d['test_points_used']} test points "
        f"(of {d['test_points_available']}; {d['skipped_no_warm_history']} without warm history)\n"
    )
    print("| scorer | cold HR@10 | cold NDCG@10 | cold MRR@10 | full HR@10 | full NDCG@10 | full MRR@10 | full HR@50 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in result["results"].items():
        c, f = r["among_cold"], r["full_catalogue"]
        print(
            f"| {name} | {c['hr@10']:.4f} | {c['ndcg@10']:.4f} | {c['mrr@10']:.4f} | {f['hr@10']:.4f} "
            f"| {f['ndcg@10']:.4f} | {f['mrr@10']:.4f} | {f['hr@50']:.4f} |"
        )
    print()
    for name, m in result["mapping"].items():
        print(
            f"{name}: mapping held-out cosine {m['cosine_mean']:.3f} (mean-row baseline "
            f"{m['baseline_cosine_mean']:.3f}; fitted on {m['fitted_on']}, {m['held_out']} held out); "
            f"encoder fit + encode {m['fit_encode_seconds']:.1f}s"
        )
    for name, u in result["upsert_to_recommendable"].items():
        if u["items"]:
            print(
                f"upsert to recommendable ({name}): p50 {u['p50_ms']:.1f} ms, p99 {u['p99_ms']:.1f} ms, "
                f"{u['recommendable_on_return']}/{u['items']} in the cold table on return"
            )
    print_exploration(result["exploration"])
    t = result["training"]
    print(
        f"training: {t['epochs']} epochs (best {t['best_epoch']}, {t['stopped']}), {t['seconds']:.1f}s; "
        f"warm leave-one-out NDCG@10 {result['warm_leave_one_out']['model']['ndcg@10']:.4f}"
    )
    for name, note in result["scorer_notes"].items():
        print(f"- {name}: {note}")
    for note in result["notes"]:
        print(f"- {note}")


def print_exploration(e: dict[str, Any]) -> None:
    if "skipped" in e:
        print(f"exploration: skipped ({e['skipped']})")
        return
    k = e["k"]
    print(
        f"\n#### Exploration: {e['users_sampled']} users' next items (of {e['users_eligible']}; "
        f"{e['targets_cold']} cold), {e['cold_items_recommendable']}/{e['cold_items']} cold items in the cold table\n"
    )
    print(f"| slots | NDCG@{k} all | HR@{k} all | HR@{k} cold targets | cold coverage | cold slot share |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in e["rows"]:
        cold_hr = r[f"hr@{k}_cold_targets"]
        print(
            f"| {r['slots']} | {r[f'ndcg@{k}_all']:.4f} | {r[f'hr@{k}_all']:.4f} "
            f"| {'n/a' if cold_hr is None else f'{cold_hr:.4f}'} "
            f"| {r['cold_coverage']:.3f} | {r['cold_slot_share']:.4f} |"
        )
    print()
    for r in e["rows"]:
        print(
            f"slots {r['slots']}: {r['exploration_slots_filled']} exploration slots filled "
            f"({r['exploration_slots_cold']} with cold items), {r['cold_slots_on_items_met_before']} cold slots on "
            f"items the user met before the target, {r['trending_fallback_lists']} trending lists, "
            f"{r['recommend_ms_mean']:.2f} ms per request"
        )
    c = e["cold_table_check"]
    print(
        f"- exploration: {e['design']}; little-exposed: at most {e['exploration_max_interactions']} interactions; "
        f"cold rows vs the trained engine's: max |diff| {c['max_abs_diff_vs_trained_engine']:.2g} "
        f"over {c['cold_rows_compared']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted([*DATA_DIRS, *SYNTHETIC]))
    parser.add_argument("--data-dir", type=Path, help="Directory holding the dataset files.")
    parser.add_argument("--seed", type=int, default=0, help="Seed for the cold items, test sample and baselines.")
    parser.add_argument("--cold-fraction", type=float, default=0.1, help="Share of interacted items held out.")
    parser.add_argument("--max-test", type=int, default=5000, help="Most test points (sampled with the seed).")
    parser.add_argument("--encoders", default="tfidf,minilm", help="Comma-separated content encoders.")
    parser.add_argument("--epochs", type=int, help="train.epochs (upper bound; early stopping may end sooner).")
    parser.add_argument("--max-seconds", type=float, help="train.max_seconds: training time budget.")
    parser.add_argument("--upsert-items", type=int, default=50, help="New items upserted for the latency figure.")
    parser.add_argument(
        "--exploration-slots",
        default="0,1,2",
        help="Comma-separated content.exploration_slots values to measure (empty: skip the measurement).",
    )
    parser.add_argument(
        "--exploration-users", type=int, default=2000, help="Most users in the exploration measurement (sampled)."
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="Settings override, e.g. --set model.dim=32."
    )
    parser.add_argument("--quick", action="store_true", help="Smoke run: tiny shop, tiny model, 2 epochs.")
    parser.add_argument("--out", type=Path, help="JSON output (default benchmarks/results/cold_start_<dataset>.json).")
    args = parser.parse_args()
    if args.quick:
        args.dataset = args.dataset or "tiny-shop"
        args.epochs = args.epochs or 2
        args.upsert_items = min(args.upsert_items, 10)
        args.overrides = ["model.dim=16", "model.layers=1", *args.overrides]
    if args.dataset is None:
        parser.error("--dataset is required (or --quick)")
    if not all(s.strip().isdigit() for s in args.exploration_slots.split(",") if s.strip()):
        parser.error("--exploration-slots takes non-negative integers, e.g. 0,1,2")
    data_dir = args.data_dir or SHARED_DATA / DATA_DIRS.get(args.dataset, "")
    with tempfile.TemporaryDirectory(prefix="freshrec-cold-") as work:
        result = run(args, data_dir, Path(work))
    print_table(result)
    result["options"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result["command"] = shlex.join(["python", "benchmarks/cold_start.py", *sys.argv[1:]])
    write_json(args.out or ROOT / "benchmarks" / "results" / f"cold_start_{args.dataset}.json", result)


if __name__ == "__main__":
    main()

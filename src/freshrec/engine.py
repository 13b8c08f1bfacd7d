"""build_engine(settings): the one place that opens the stores, the registry and the recommender.

The HTTP service, the CLI and the demo all go through :class:`Engine`; there is no second wiring path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from freshrec.config import Settings
from freshrec.errors import InvalidInput, NotFound, Unavailable
from freshrec.model.gate import GateLog
from freshrec.model.registry import ModelNotFoundError
from freshrec.position import Cursor, behind, local, partition_of, total
from freshrec.ranking.features import POPULARITY_HALF_LIVES
from freshrec.ranking.ranker import load_ranker
from freshrec.recommend import TRENDING_REFRESH_S, Recommender
from freshrec.schema import (
    AppendResult,
    EventAck,
    EventIn,
    EventOut,
    EventRecord,
    Health,
    ItemIn,
    ItemOut,
    ItemsAck,
    ModelInfo,
    RecommendationList,
    SequenceEntry,
    SimilarItems,
    UserExport,
    UserStateOut,
)
from freshrec.serving_model import ServingModel
from freshrec.state.base import StateStore, open_state_store
from freshrec.state.shared import open_preferences, open_trending
from freshrec.stores import Stores, open_stores
from freshrec.validation import check_events, check_items, foreign_record_problem

log = logging.getLogger(__name__)

#: Seconds a worker waits for the events just before its own to be folded by the worker that appended them,
#: before folding them itself from the log (that worker may have died).
GAP_WAIT_S = 0.25
#: The consumer group ``freshrec ingest`` commits the applied offset under.
INGEST_GROUP = "freshrec-ingest"


@dataclass
class _Pending:
    """One caller's records waiting for (or in) a group commit."""

    records: list[EventRecord]
    results: list[AppendResult] | None = None
    error: BaseException | None = None
    done: bool = False
    promoted: bool = False
    exclusive: bool = False

    def result(self) -> list[AppendResult]:
        if self.error is not None:
            raise self.error
        assert self.results is not None
        return self.results


class Engine:
    """One freshrec process: event log, catalogue, live state, trending, model registry, recommender.

    Example
    -------
    >>> import tempfile
    >>> from freshrec.config import load_settings
    >>> from freshrec.schema import EventIn
    >>> engine = build_engine(load_settings(storage={"data_dir": tempfile.mkdtemp()}))
    >>> engine.ingest([EventIn(user_id="u1", item_id="sku-1", type="view")]).accepted
    1
    >>> engine.recommend("u1").source          # no model trained yet: the trending fallback
    'trending'
    >>> engine.close()
    """

    def __init__(self, stores: Stores, state: StateStore, trending_refresh_s: float = TRENDING_REFRESH_S) -> None:
        settings = stores.settings
        self.stores = stores
        self.settings = settings
        self.event_log = stores.event_log
        self.catalog = stores.catalog
        self.registry = stores.registry
        self.types = stores.types
        #: Content vectors for cold start (None when content is disabled); fitted by `freshrec train`.
        self.content = stores.content
        self.state = state
        # the ranker reads popularity at more half-lives than the one trending lists rank by
        self.trending = open_trending(
            settings.storage.state_url, settings.state.trending_half_life_hours * 3600.0, POPULARITY_HALF_LIVES
        )
        self.preferences = open_preferences(
            settings.storage.state_url,
            settings.storage.data_dir / "preferences.db",
            synchronous=settings.storage.sqlite_synchronous,
        )
        self.recommender = Recommender(
            state,
            self.catalog,
            self.trending,
            self.types,
            settings.serving,
            settings.content,
            self.preferences,
            trending_refresh_s=trending_refresh_s,
        )
        # Group commit: one append at a time holds the turn (_leading) and stores every append queued behind
        # it; _ingest_lock guards the fold itself (and catch-up).
        self._turn = threading.Condition()
        self._queue: list[_Pending] = []
        self._leading = False
        self._ingest_lock = threading.Lock()
        #: Logged events state could not fold (malformed records another producer wrote to the log).
        self.skipped_events = 0

    # ---- events ----------------------------------------------------------------------------------

    def ingest(self, events: Sequence[EventIn]) -> EventAck:
        """Validate, store durably, update user state; returns only when all of that is done."""
        now = time.time()
        check_events(events, self.settings.events, self.types, now)
        records = [
            EventRecord(
                0,
                e.user_id,
                e.item_id,
                e.type,
                e.timestamp(now),
                None if e.value is None else float(e.value),
                e.event_id,
                e.context,
            )
            for e in events
        ]
        results = self.append_records(records)
        duplicates = sum(r.duplicate for r in results)
        return EventAck(accepted=len(results) - duplicates, duplicates=duplicates, offsets=[r.offset for r in results])

    def append_records(self, records: Sequence[EventRecord]) -> list[AppendResult]:
        """Store already-validated records and fold them into state (the import path uses this too).

        Group commit: appends that arrive while one is being stored wait, and the next of them stores all
        of them in one append and one fold (one fsync, one broker round trip, one state write); each caller
        gets its own results, and returns only once its events are durable and folded."""
        mine = _Pending(list(records))
        with self._turn:
            self._queue.append(mine)
            if self._leading:
                while not (mine.done or mine.promoted):
                    self._turn.wait()
                if mine.done:
                    return mine.result()
            self._leading = True
            # everything queued up to a caller that needs the turn alone (a deletion)
            n = next((i for i, p in enumerate(self._queue) if p.exclusive), len(self._queue))
            group, self._queue = self._queue[:n], self._queue[n:]
        try:
            self._store_group(group)
        finally:
            self._hand_over()
        return mine.result()

    def _hand_over(self) -> None:
        """Give the turn to the oldest waiting append, or free it."""
        with self._turn:
            if self._queue:
                self._queue[0].promoted = True
            else:
                self._leading = False
            self._turn.notify_all()

    def _store_group(self, group: list[_Pending]) -> None:
        try:
            results = self.event_log.append([r for p in group for r in p.records])
        except Exception as exc:
            if len(group) == 1 or isinstance(exc, Unavailable):
                for p in group:
                    p.error = exc
            else:  # one caller's bad batch must not fail the others: store each on its own
                for p in group:
                    try:
                        p.results = self.event_log.append(p.records)
                    except Exception as own:
                        p.error = own
        else:
            at = 0
            for p in group:
                p.results, at = results[at : at + len(p.records)], at + len(p.records)
        stored = [p for p in group if p.error is None]
        try:
            self._fold_appended([r for p in stored for r in p.records], [r for p in stored for r in p.results or []])
        except Exception as exc:  # durable but not folded: the next append or catch-up folds them
            for p in stored:
                p.error = exc
        finally:
            with self._turn:
                for p in group:
                    p.done = True
                self._turn.notify_all()

    def _fold_appended(self, records: Sequence[EventRecord], results: Sequence[AppendResult]) -> None:
        with self._ingest_lock:
            fresh = []
            for rec, res in zip(records, results, strict=True):
                if not res.duplicate:
                    rec.offset = res.offset
                    fresh.append(rec)
            if not fresh:
                return
            parts: dict[int, list[EventRecord]] = {}  # per partition, in offset order
            for rec in fresh:
                parts.setdefault(partition_of(rec.offset), []).append(rec)
            self._fold_parts(fresh, parts)

    def _fold_parts(self, fresh: list[EventRecord], parts: dict[int, list[EventRecord]]) -> None:
        """Fold each partition's share of an appended group once the applied offset has reached the event
        just before it. In state shared by several workers, those events were usually appended by another
        worker that is folding them now: waiting a moment for it (up to :data:`GAP_WAIT_S`) keeps every worker
        folding only its own batches, where reading them back from the log would make each worker fold the
        others' too. Partitions are folded as they become ready, so two workers whose batches interleave in
        opposite orders in two partitions do not wait on each other."""
        partitions = self.event_log.partitions
        deadline = time.monotonic() + GAP_WAIT_S
        while parts:
            applied = self.state.applied(partitions)
            ready: set[int] = set()
            interleaved = False  # another writer's events lie between ours: only the log has them
            for p, recs in list(parts.items()):
                if recs[-1].offset <= applied[p]:
                    del parts[p]  # another worker folded them from the log
                elif recs[0].offset <= applied[p] + 1:
                    contiguous = recs[0].offset == applied[p] + 1 and recs[-1].offset - recs[0].offset == len(recs) - 1
                    if contiguous:
                        ready.add(p)
                    else:
                        interleaved = True
            if ready:
                self._apply([r for r in fresh if partition_of(r.offset) in ready])
                for p in ready:
                    del parts[p]
            elif parts:
                if interleaved or not self.state.shared or time.monotonic() >= deadline:
                    # another process wrote to the log too (or the worker before us died): replay what we
                    # have not applied
                    self._catch_up_locked(progress=False)
                    return
                time.sleep(0.0005)

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Take the turn alone, in order with the appends queued: none is stored or folded until the block
        ends."""
        mine = _Pending([], exclusive=True)
        with self._turn:
            self._queue.append(mine)
            if self._leading:
                while not mine.promoted:
                    self._turn.wait()
            self._leading = True
            self._queue.remove(mine)
        try:
            with self._ingest_lock:
                yield
        finally:
            self._hand_over()

    def catch_up(self, progress: bool = False) -> int:
        """Apply every logged event state has not seen (start-up rebuild, other writers); returns count."""
        with self._ingest_lock:
            return self._catch_up_locked(progress)

    def _catch_up_locked(self, progress: bool) -> int:
        partitions = self.event_log.partitions
        cursor = self.state.applied(partitions)
        pending = behind(cursor, self.event_log.ends())
        applied = 0
        with tqdm(
            total=pending, desc="rebuilding user state", unit="ev", disable=not progress or not pending, leave=False
        ) as bar:
            for p in range(partitions):
                after = cursor[p]
                while True:
                    page = self.event_log.read(after, 50_000)
                    if not page:
                        break
                    good = [r for r in page if self._foldable(r)]
                    if good:
                        self._apply(good)
                    if not good or good[-1].offset != page[-1].offset:
                        self.state.skip_to(page[-1].offset)  # the page ended on skipped events: step past them
                    applied += len(good)
                    bar.update(len(page))
                    # another worker may have folded further meanwhile: go on from the furthest point
                    after = max(page[-1].offset, self.state.applied(p + 1)[p])
        return applied

    def follow(self, stop: threading.Event, poll_s: float = 0.05) -> None:
        """Fold the events other producers write to the log into live state until ``stop`` is set, committing
        the applied offset under :data:`INGEST_GROUP` (``freshrec ingest``: the stream processor's role).
        Idempotent: an event some worker applied already is not folded again."""
        committed: Cursor | None = None
        while not stop.is_set():
            try:
                folded = self.catch_up()
                applied = self.state.applied(self.event_log.partitions)
                if applied != committed:
                    self.event_log.commit(INGEST_GROUP, applied)
                    committed = applied
            except Unavailable as exc:  # the broker or Redis is away: wait for it, then go on
                log.warning("waiting for the stores: %s", exc)
                stop.wait(1.0)
                continue
            if not folded:
                stop.wait(poll_s)

    def _foldable(self, rec: EventRecord) -> bool:
        problem = foreign_record_problem(rec, self.settings.events, self.types)
        if problem is not None:
            self.skipped_events += 1
            log.warning(
                "skipping logged event at offset %d of partition %d: %s",
                local(rec.offset),
                partition_of(rec.offset),
                problem,
            )
        return problem is None

    def _apply(self, records: Sequence[EventRecord]) -> None:
        idx = self.catalog.internal_ids([r.item_id for r in records], create=True)
        done = self.state.apply(records, idx)
        if len(done) < len(records):  # another worker applied the rest, and counted them as trending
            records, idx = [records[j] for j in done], [idx[j] for j in done]
        self.trending.add_events(records, idx, self.types.negative)

    def delete_user(self, user_id: str) -> int:
        """Forget a user: their events and state. Returns the number of events removed."""
        with self._quiet():
            removed = self.event_log.delete_user(user_id)
            self.state.delete(user_id)
            self.recommender.forget(user_id)
            had_preferences = self.preferences.delete(user_id)
        if not removed and not had_preferences:
            raise NotFound(f"unknown user {user_id!r}")
        return removed

    def export_user(self, user_id: str) -> UserExport:
        """Everything held about a user (data subject access): logged events with context, live state,
        onboarding preferences."""
        events = self.event_log.user_events(user_id)
        try:
            state = self.user_state(user_id)
        except NotFound:
            state = None
        if not events and state is None:
            raise NotFound(f"unknown user {user_id!r}")
        return UserExport(
            user_id=user_id,
            events=[EventOut.model_validate(e, from_attributes=True) for e in events],
            state=state,
            preferences=self.preferences.get(user_id),
        )

    def set_preferences(self, user_id: str, categories: Sequence[str]) -> list[str]:
        """Store a user's onboarding categories (each must exist in the catalogue); returns them."""
        known = self.recommender.category_items()
        unknown = [c for c in categories if c not in known]
        if unknown:
            sample = ", ".join(sorted(known)[:20])
            raise InvalidInput(f"unknown categories {unknown}; the catalogue has: {sample}")
        self.preferences.set(user_id, categories)
        self.recommender.forget(user_id)
        return list(dict.fromkeys(categories))

    def user_state(self, user_id: str) -> UserStateOut:
        self.catalog.refresh()
        snap = self.state.get(user_id)
        prefs = self.preferences.get(user_id)
        if snap is None and prefs is None:
            raise NotFound(f"unknown user {user_id!r}")
        if snap is None:
            return UserStateOut(user_id=user_id, sequence=[], seen_count=0, preferences=prefs)
        return UserStateOut(
            user_id=user_id,
            sequence=[
                SequenceEntry(item_id=self.catalog.external_id(int(i)), type=self.types.name(int(t)), ts=float(ts))
                for i, t, ts in zip(snap.items, snap.types, snap.ts, strict=True)
            ],
            seen_count=len(snap.seen),
            preferences=prefs,
        )

    # ---- catalogue -------------------------------------------------------------------------------

    def upsert_items(self, items: Sequence[ItemIn]) -> ItemsAck:
        check_items(items, self.settings.events)
        idx, created = self.catalog.upsert(items)
        content_fields = {"title", "text", "categories", "attributes"}
        changed = [i for i, it in zip(idx, items, strict=True) if it.model_fields_set & content_fields]
        if self.content is not None and self.content.fitted and changed:
            # Encode and map at once: a new item with content is recommendable when this returns.
            self.content.update(changed)
            serving = self.recommender.serving
            if serving is not None:
                serving.update_cold(changed)
        return ItemsAck(upserted=len(items), created=created)

    def fit_content(self, encoder: str | None = None, progress: bool = False) -> int:
        """Fit the content encoder on the catalogue, encode every item, and re-map the serving model's
        cold items; returns how many items have content."""
        if self.content is None:
            raise InvalidInput("content is disabled (content.enabled = false)")
        n = self.content.fit(encoder or self.settings.content.encoder, progress=progress)
        serving = self.recommender.serving
        if serving is not None:
            serving.attach_content(self.content)
        return n

    def get_item(self, item_id: str) -> ItemOut:
        self.catalog.refresh()
        found = self.catalog.get([item_id])[0]
        if found is None:
            raise NotFound(f"unknown item {item_id!r}")
        return found.to_out()

    # ---- models ----------------------------------------------------------------------------------

    def load_model(self, version: str | None = None, make_current: bool = False) -> str:
        """Load a version (default: the registry's current one) and swap it into serving.

        With ``make_current`` the registry's current pointer moves too, so every process (other API
        processes, the online trainer) follows; that is what ``POST /v1/model/reload`` with a version does.
        """
        try:
            loaded = self.registry.load(version)
            if make_current and version is not None and self.registry.current() != version:
                pinned = self.registry.pinned()
                if pinned not in (None, version):
                    raise InvalidInput(f"version {pinned} is pinned; unpin it before switching to {version}")
                self.registry.set_current(version)
        except ModelNotFoundError as exc:
            raise NotFound(str(exc)) from exc
        model = ServingModel(loaded, self.catalog, self.types, self.settings.serving.index)
        # Only when serving uses it: LightGBM and what it imports are ~80 MB of a server's memory.
        model.ranker = load_ranker(loaded.ranker) if self.settings.serving.ranker else None
        content_version = self.content.version if self.content is not None else 0
        if self.content is not None and not model.reuse_content(self.recommender.serving, self.content):
            model.attach_content(self.content)
        self.recommender.swap(model)
        if self.content is not None and self.content.version != content_version:
            model.update_cold(self.content.with_content())  # items upserted while we were mapping
        log.info("serving model %s", loaded.version)
        return loaded.version

    def refresh_model(self) -> bool:
        """Load the registry's current version if serving holds another one; True when it swapped."""
        current = self.registry.current()
        serving = self.recommender.serving
        if current is None or (serving is not None and serving.version == current):
            return False
        self.load_model(current)
        return True

    def model_history(self) -> dict[str, Any]:
        """Lineage of every version plus the quality gate's decisions, newest last."""
        return {
            "current": self.registry.current(),
            "pinned": self.registry.pinned(),
            "versions": self.registry.history(),
            "gate_decisions": GateLog(self.registry.root).read(limit=200),
        }

    def model_info(self) -> ModelInfo:
        serving = self.recommender.serving
        if serving is None:
            return ModelInfo(version=None)
        meta = serving.meta
        return ModelInfo(
            version=serving.version,
            kind=meta.get("kind"),
            parent=meta.get("parent"),
            offsets=meta.get("offsets") or {},
            created_at=meta.get("created_at"),
            config=meta.get("config", {}),
            metrics=meta.get("metrics", {}),
            data=meta.get("data", {}),
            num_items=serving.num_rows,
        )

    def recommend(
        self,
        user_id: str,
        k: int | None = None,
        exclude_seen: bool | None = None,
        diversity: float | None = None,
        objective: str | None = None,
    ) -> RecommendationList:
        self.catalog.refresh()  # items another worker (or `freshrec import`) added since the last request
        return self.recommender.recommend(user_id, k, exclude_seen, diversity, objective)

    async def recommend_async(
        self,
        user_id: str,
        k: int | None = None,
        exclude_seen: bool | None = None,
        diversity: float | None = None,
        objective: str | None = None,
    ) -> RecommendationList:
        self.catalog.refresh()
        return await self.recommender.recommend_async(user_id, k, exclude_seen, diversity, objective)

    def similar(self, item_id: str, k: int | None = None) -> SimilarItems:
        self.catalog.refresh()
        return self.recommender.similar(item_id, k)

    def health(self) -> Health:
        serving = self.recommender.serving
        applied = self.state.applied(self.event_log.partitions)
        return Health(
            status="ok",
            model_version=serving.version if serving else None,
            last_offset=total(applied),
            applied_offsets=[local(o) for o in applied],
            users=len(self.state),
            items=len(self.catalog),
            torch_threads=torch.get_num_threads(),
        )

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.recommender.close()
        self.trending.close()
        self.stores.close()
        self.preferences.close()


def build_engine(
    settings: Settings,
    *,
    load_model: bool = True,
    progress: bool = False,
    trending_refresh_s: float = TRENDING_REFRESH_S,
) -> Engine:
    """Open every store the settings name, rebuild live state from the log, load the current model.

    ``trending_refresh_s``: how long the trending ranking is reused (the streaming replay, which runs on
    stream time, recomputes it for every event with 0).
    """
    stores = open_stores(settings)
    state = open_state_store(
        settings.storage.state_url,
        types=stores.types,
        max_len=settings.state.max_sequence_length,
        collapse_repeats=settings.state.collapse_repeats,
        item_graph=settings.serving.ranker,
    )
    engine = Engine(stores, state, trending_refresh_s)
    engine.catch_up(progress=progress)
    if load_model and engine.registry.current() is not None:
        engine.load_model()
    return engine

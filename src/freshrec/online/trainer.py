"""OnlineTrainer: tails the event log, fine-tunes the model in micro-batches, publishes through the gate.

One micro-batch, in order:

1. read the events after the committed cursor, partition after partition (up to
   ``online.micro_batch_events``, twice as many while more than that are waiting: a trainer that has fallen
   behind takes fewer, larger steps until it has caught up);
2. keep out of training what the data-quality guard does not admit (:class:`~freshrec.quality.guard.DataGuard`:
   bots and abnormal users, duplicate and out-of-order floods, unknown event types; a user it flags is also
   dropped from the sequences and the replay buffer), then fold the rest into the trainer's user sequences
   (the one fold rule, :class:`~freshrec.sequence.Sequences`), noting the history each event was chosen after;
3. grow the item table for items the model has never seen, and rebuild the rows of items it has a row for
   but never trained on (:class:`~freshrec.online.growth.TableGrowth`);
4. if a publish is due, judge the working model against the current version on these events, which
   neither has trained on, and on the fixed older holdout (:class:`~freshrec.online.publisher.Publisher`);
5. one optimisation step on the affected users' newest entries, mixed with replayed spans of users drawn
   from the reservoir buffer (anti-forgetting; :func:`~freshrec.online.batches.micro_batch`), with the same
   :func:`~freshrec.model.train.train_step` as offline training;
6. while serving uses the ranker: record the requests serving would have answered for a sample of the
   batch's events, and refit, gate and publish the ranker when enough new ones arrived
   (:class:`~freshrec.online.ranking.OnlineRanker`);
7. checkpoint weights + committed cursor atomically, then write the guard's report (``quality.json``).

A crash anywhere before 7 leaves the previous checkpoint, so the batch is trained again: at-least-once,
never skipped. If the current version is changed from outside (rollback, a full retrain), the trainer
restarts from that version and its offsets. The trainer reads the event log, the catalogue, the model
registry and the content store (:class:`~freshrec.stores.Stores`); it keeps live serving state only for the
ranker's features, and only while ``serving.ranker`` is on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from freshrec.config import OnlineSettings
from freshrec.errors import FreshrecError
from freshrec.events.base import iter_pages
from freshrec.events.identity import id_digest
from freshrec.model.data import EvalSet
from freshrec.model.gate import GateDecision
from freshrec.model.sasrec import SASRec
from freshrec.online.batches import micro_batch
from freshrec.online.buffer import ReservoirBuffer
from freshrec.online.checkpoint import CheckpointStore, TrainerState
from freshrec.online.growth import CALIBRATION_USERS, TableGrowth
from freshrec.online.learner import History, Learner
from freshrec.online.publisher import Publisher
from freshrec.online.ranking import OnlineRanker
from freshrec.position import advance, as_cursor, describe, ranges
from freshrec.quality.guard import DataGuard
from freshrec.quality.report import QUALITY_REPORT, write_report
from freshrec.schema import EventRecord
from freshrec.sequence import Sequences, UserSequence
from freshrec.stores import Stores

log = logging.getLogger(__name__)

#: While more than a micro-batch of events is waiting, a micro-batch takes up to this many times as many.
CATCH_UP_FACTOR = 2
#: The consumer group the trainer commits its offset under (what `kafka-consumer-groups` shows as its lag).
TRAINER_GROUP = "freshrec-trainer"
#: Seconds the trainer waits when the log has nothing new.
POLL_INTERVAL_S = 0.5

_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass
class BatchReport:
    ranges: list[list[int]]  # per partition, the batch's [first, last] offsets
    events: int
    trained_users: int
    replayed_users: int
    new_items: int
    loss: float | None
    seconds: float
    decision: GateDecision | None = None
    published: str | None = None
    rebuilt_rows: int = 0  # rows of never-trained catalogue items rebuilt on their first events
    ranker_requests: int = 0  # requests recorded for the ranker (chosen item among the candidates)
    ranker_decision: GateDecision | None = None  # a refitted ranker's gate decision, when one was due
    ranker_seconds: float = 0.0  # of ``seconds``: recording requests, and fitting and judging a ranker
    held_out: int = 0  # events the data-quality guard kept out of training

    @property
    def first_offset(self) -> int:
        """The batch's lowest offset (with one partition, its first)."""
        return self.ranges[0][0]

    @property
    def last_offset(self) -> int:
        """The batch's highest offset (with one partition, its last)."""
        return self.ranges[-1][1]


class OnlineTrainer:
    """Continual learning from the event log; see the module docstring.

    Example
    -------
    >>> trainer = OnlineTrainer(open_stores(settings))   # doctest: +SKIP
    >>> trainer.run(stop_event)                          # doctest: +SKIP
    """

    def __init__(self, stores: Stores, settings: OnlineSettings | None = None) -> None:
        self.stores = stores
        self.settings = settings or stores.settings.online
        self.checkpoints = CheckpointStore(stores.registry.root / "trainer")
        self._seed = stores.settings.train.seed
        self._last_publish_attempt = time.monotonic()
        self._last_batch_at = time.monotonic()
        self._last_batch: list[list[int]] | None = None  # offset ranges of the last micro-batch trained
        self._next_partition = 0  # where the next micro-batch starts reading (partitions take turns)
        self._load()

    # ---- lineage ---------------------------------------------------------------------------------

    def _load(self) -> None:
        """Start from the checkpoint if it descends from the current version, else from the current version."""
        registry = self.stores.registry
        current = registry.current()
        partitions = self.stores.event_log.partitions
        restored = self.checkpoints.load(partitions)
        if restored is not None and restored[2].base_version == current:
            model, item_ids, self.state = restored
        else:
            if current is None:
                raise RuntimeError("the online trainer needs a model version to start from: run `freshrec train`")
            if restored is not None:
                log.info("current version %s changed outside the trainer: restarting from it", current)
            loaded = registry.load(current)
            reached = (loaded.meta.get("offsets") or {}).get("to") or loaded.meta.get("data", {}).get("max_offset")
            committed = list(as_cursor(reached, partitions))
            ends = self.stores.event_log.ends()
            if any(c > e for c, e in zip(committed, ends, strict=True)):
                # trained on another log (the deployment moved to a new one): its events are not in this log
                log.warning("version %s was trained beyond this event log's end: training from its end", current)
                committed = [min(c, e) for c, e in zip(committed, ends, strict=True)]
            model, item_ids = loaded.model, list(loaded.item_ids)
            self.state = TrainerState(
                committed=committed,
                base_version=current,
                published=list(committed),
                # A crash between publishing and checkpointing lands here: keep the lineage's record.
                trained_ranges=[list(r) for r in loaded.meta.get("trained_ranges", [])],
            )
        train = self.stores.settings.train
        self.learner = Learner(
            model,
            item_ids,
            self.stores.catalog,
            self.settings.lr,
            train.weight_decay,
            train.exclude_seen,
            train.precision,
        )
        # Items whose rows never trained (see pipeline.untrained_items); they leave the set once seen here.
        self.untrained = set(registry.meta(self.state.base_version).get("untrained_items") or [])
        self._rng = np.random.default_rng(self._seed)
        self.growth = TableGrowth(self.stores.content, self._seed)
        quality = self.stores.settings.quality
        self.guard = DataGuard(quality, self.stores.types.names) if quality.enabled else None
        self._rebuild_sequences()
        self.publisher = Publisher(
            registry, self.stores.catalog, self.stores.types, self.checkpoints, self.settings.gate_tolerance
        )
        self.publisher.open_older_holdout(self.sequences, self._rng)
        self._erasures_seen = 0
        self._forget_erased()  # the sequences come from the log without them; the holdout file may not
        self.ranking: OnlineRanker | None = None
        if self.stores.settings.serving.ranker:
            self.ranking = OnlineRanker(self.stores, self._seed, self.settings.gate_tolerance)
            self.ranking.rebuild(self.state.committed)

    def _rebuild_sequences(self) -> None:
        """Every user's sequence as of the committed cursor (one entry more than the model reads: a target)."""
        settings = self.stores.settings
        self.sequences = Sequences(
            self.stores.types, self.learner.max_len + 1, collapse_repeats=settings.state.collapse_repeats
        )
        self.buffer = ReservoirBuffer(self.settings.buffer_size, seed=self._seed)
        # The guard's state is rebuilt with the sequences: it is a function of the log up to the cursor.
        for page in iter_pages(self.stores.event_log, upto=self.state.committed):
            page = self._admitted(page, rebuilding=True)
            self.buffer.extend([page[j].user_id for j in self.sequences.fold(page, self._catalog_idx(page))])
        self._write_quality()

    def _admitted(self, events: Sequence[EventRecord], rebuilding: bool = False) -> list[EventRecord]:
        """The events the guard admits to training; users it flags now leave the sequences, the buffer and
        (unless the sequences are being rebuilt, before the holdout is opened) the older holdout."""
        if self.guard is None:
            return list(events)
        verdicts = self.guard.admit(events)
        if verdicts.flagged:
            flagged = set(verdicts.flagged)
            for user in flagged:
                self.sequences.pop(user)
            self.buffer.remove(flagged)
            if not rebuilding and flagged & self.publisher.older_users:
                self.publisher.forget(flagged & self.publisher.older_users)
            log.info("data-quality guard quarantined %d users", len(flagged))
        return [e for e, ok in zip(events, verdicts.admitted, strict=True) if ok]

    def _write_quality(self) -> None:
        report = self.guard.report() if self.guard is not None else {"enabled": False}
        write_report(self.stores.settings.storage.data_dir / QUALITY_REPORT, report)

    def _forget_erased(self) -> None:
        """Drop users erased since the last look (``DELETE /v1/users/{id}``) from the trainer's sequences,
        replay buffer and older holdout; their events are gone from the log, so no later training sees them."""
        found = self.stores.event_log.erasures(self._erasures_seen)
        if not found:
            return
        self._erasures_seen = found[-1][0]
        digests = {d for _, d in found}
        gone = {u for u in self.sequences if id_digest(u) in digests}
        gone |= {u for u in self.publisher.older_users if id_digest(u) in digests}
        if self.guard is not None:
            gone |= {u for u in self.guard.users if id_digest(u) in digests}
        if not gone:
            return
        if self.guard is not None:
            self.guard.forget(gone)
        for user in gone:
            self.sequences.pop(user)
        self.buffer.remove(gone)
        self.publisher.forget(gone)
        log.info("forgot %d erased users", len(gone))

    def _follow_external_changes(self) -> None:
        """CURRENT moved away from the trainer's lineage. To a newer version (a full retrain, another
        trainer's publish): restart from it, it holds what the trainer learned and more. To an older one (a
        rollback, a pin, a reload of an earlier version): keep the weights and what they learned, and publish
        on top of that version from now on, through the gate against it."""
        registry = self.stores.registry
        current = registry.current()
        if current is None or current == self.state.base_version:
            return
        order = registry.versions()
        base = self.state.base_version
        if base in order and current in order and order.index(current) < order.index(base):
            log.warning(
                "current version is now %s (was %s): the trainer keeps its weights and publishes on it", current, base
            )
            self.state.base_version = current
            self.checkpoints.save(self.model, self.item_ids, self.state)
            return
        log.warning("current version is now %s (not %s): the trainer restarts from it", current, base)
        self.checkpoints.clear()
        self._load()

    @property
    def model(self) -> SASRec:
        """The weights being fine-tuned."""
        return self.learner.model

    @property
    def item_ids(self) -> list[str]:
        return self.learner.item_ids

    def older_eval_set(self) -> EvalSet:
        """The fixed older holdout (forgetting), in catalogue indices."""
        return self.publisher.older_eval_set()

    # ---- one micro-batch -------------------------------------------------------------------------

    def _commit(self) -> None:
        """Tell the event log (Kafka: the consumer group) how far the checkpoint reaches. The checkpoint stays
        the trainer's own record of where to resume; the committed offsets are what the log's tools see."""
        try:
            self.stores.event_log.commit(TRAINER_GROUP, self.state.committed)
        except FreshrecError as exc:  # the broker is down: the next checkpoint commits again
            log.warning("could not commit %s for %s: %s", describe(self.state.committed), TRAINER_GROUP, exc)

    def due(self, pending: int) -> bool:
        """Whether enough has accumulated to train now (events, or time since the last batch)."""
        if pending >= self.settings.micro_batch_events:
            return True
        return pending > 0 and time.monotonic() - self._last_batch_at >= self.settings.micro_batch_seconds

    def poll(self, force: bool = False) -> BatchReport | None:
        """Train one micro-batch if one is due (``force``: whatever is there). ``None`` when idle."""
        self._follow_external_changes()
        self._forget_erased()
        events = self._next_events(CATCH_UP_FACTOR * self.settings.micro_batch_events)
        if not events or not (force or self.due(len(events))):
            self._publish_in_lull()
            return None
        return self.process(events)

    def _next_events(self, limit: int) -> list[EventRecord]:
        """Up to ``limit`` events after the committed cursor: partitions take turns at starting the batch, and
        the next ones fill what is left."""
        events: list[EventRecord] = []
        committed = self.state.committed
        for k in range(len(committed)):
            if len(events) >= limit:
                break
            p = (self._next_partition + k) % len(committed)
            events += self.stores.event_log.read(committed[p], limit - len(events))
        self._next_partition = (self._next_partition + 1) % len(committed)
        return events

    def _publish_in_lull(self) -> None:
        """Publish what was trained before the stream went quiet, judged on the older holdout alone;
        otherwise those weights would wait for the next event however long that takes."""
        last, idle, now = self._last_batch, self.settings.idle_publish_s, time.monotonic()
        if (
            last is None
            or not idle
            or not self.state.unpublished_ranges()
            or now - self._last_batch_at < idle
            or now - self._last_publish_attempt < self.settings.publish_interval_s
        ):
            return
        self._judge(last)
        self.checkpoints.save(self.model, self.item_ids, self.state)

    def _judge(
        self, evaluated_on: list[list[int]], recent: EvalSet | None = None
    ) -> tuple[GateDecision | None, str | None]:
        self._last_publish_attempt = time.monotonic()
        decision, published = self.publisher.judge(self.learner, self.state, self.untrained, evaluated_on, recent)
        if decision is not None and "resynced" in decision.context:
            self.growth.clear()
        if decision is not None and self.guard is not None:
            serving = decision.figures.get("recent", {}).get("current")
            if serving is not None and serving.get("n"):
                self.guard.observe_model(serving["ndcg@10"])
        return decision, published

    def process(self, batch_events: list[EventRecord]) -> BatchReport:
        """Train on these events (the next ones after the committed offset) and commit them."""
        started = time.perf_counter()
        events = self._admitted(batch_events)
        idx = self._catalog_idx(events)
        added, histories = self._fold(events, idx)
        batch_users = {e.user_id for e in events}
        new_items, rebuilt = self.growth.apply(
            self.learner, events, idx, histories, self.untrained, lambda: self._known_histories(batch_users)
        )
        batch_ranges = ranges(e.offset for e in batch_events)
        decision, published = None, None
        if time.monotonic() - self._last_publish_attempt >= self.settings.publish_interval_s:
            recent = self.publisher.recent_holdout(events, idx, histories) if events else None
            decision, published = self._judge(batch_ranges, recent)
        self.untrained.difference_update(e.item_id for e in events)
        fresh = Counter(added)  # user -> new entries, in order of first appearance
        replay = self.buffer.sample(
            round(self.settings.replay_ratio * len(fresh)), exclude=self.publisher.older_users | set(fresh)
        )
        batch = micro_batch(self.sequences, self.learner.rows, fresh, replay, self.learner.max_len, self._rng)
        loss = self.learner.step(batch) if batch is not None else None
        t_rank = time.perf_counter()
        ranker_requests, ranker_decision = self._rank(events, idx)
        ranker_seconds = time.perf_counter() - t_rank
        self.state.committed = list(advance(self.state.committed, (e.offset for e in batch_events)))
        for first, last in batch_ranges:
            self.state.add_range(first, last)
        self.state.batches += 1
        self.checkpoints.save(self.model, self.item_ids, self.state)
        self._commit()
        self._write_quality()
        self._last_batch = batch_ranges
        self._last_batch_at = time.monotonic()
        return BatchReport(
            batch_ranges,
            len(batch_events),
            len(fresh),
            len(replay),
            new_items,
            loss,
            time.perf_counter() - started,
            decision,
            published,
            rebuilt,
            ranker_requests,
            ranker_decision,
            ranker_seconds,
            len(batch_events) - len(events),
        )

    def _rank(self, events: list[EventRecord], idx: list[int]) -> tuple[int, GateDecision | None]:
        """The ranker's share of a micro-batch (step 6); a ranker it publishes becomes the lineage's base."""
        if self.ranking is None:
            return 0, None
        recorded = self.ranking.observe(events, idx)
        decision = self.ranking.refit_if_due()
        if decision is not None and decision.candidate_version is not None:
            self.publisher.renamed(self.state.base_version, decision.candidate_version)
            self.state.base_version = decision.candidate_version
        return recorded, decision

    def _catalog_idx(self, events: Sequence[EventRecord]) -> list[int]:
        return self.stores.catalog.internal_ids([e.item_id for e in events], create=True)

    def _fold(self, events: Sequence[EventRecord], idx: Sequence[int]) -> tuple[list[str], dict[int, History]]:
        """Fold events into the sequences and the replay buffer; returns the users whose sequence gained an
        entry (per event) and, for each positive event, the history it was chosen after."""
        negative = self.stores.types.negative
        histories: dict[int, History] = {}

        def before(j: int, seq: UserSequence | None) -> None:
            if events[j].type not in negative:
                histories[j] = (seq.item_array(), seq.type_array()) if seq is not None else (_EMPTY, _EMPTY)

        added = [events[j].user_id for j in self.sequences.fold(events, idx, before)]
        self.buffer.extend(added)
        return added, histories

    def _known_histories(self, exclude: set[str]) -> list[History]:
        """Histories of a random sample of known users (new rows are calibrated against them), leaving out
        ``exclude``: the users of the micro-batch, whose newest entries chose the new items themselves."""
        out = []
        for user in self.buffer.sample(CALIBRATION_USERS, exclude=exclude):
            seq = self.sequences.get(user)
            if seq is not None:
                out.append((seq.item_array(), seq.type_array()))
        return out

    # ---- loop ------------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, max_batches: int | None = None) -> int:
        """Train until ``stop`` is set (or ``max_batches`` ran); returns the number of batches."""
        stop = stop or threading.Event()
        done = 0
        while not stop.is_set() and (max_batches is None or done < max_batches):
            report = self.poll()
            if report is None:
                stop.wait(POLL_INTERVAL_S)
                continue
            done += 1
            log.info(
                "trained offsets %d-%d (%d events, %d users + %d replayed, loss %s) in %.2fs%s",
                report.first_offset,
                report.last_offset,
                report.events,
                report.trained_users,
                report.replayed_users,
                report.loss,
                report.seconds,
                f"; published {report.published}" if report.published else "",
            )
        return done

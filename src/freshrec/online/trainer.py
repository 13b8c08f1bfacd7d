"""OnlineTrainer: tails the event log, fine-tunes the model in micro-batches, publishes through the gate.

One micro-batch, in order:

1. read the events after the committed offset (up to ``online.micro_batch_events``, or up to
   ``online.catch_up_events`` while more than that are waiting);
2. grow the item table for items the model has never seen, and rebuild the rows of items it has a row for
   but never trained on (:mod:`freshrec.online.growth`);
3. if a publish is due, judge the working model against the current version on these events, which
   neither has trained on (prequential), and on the fixed older holdout, where it must also clear the
   lineage's first version (the anchor); publish if the gate accepts; after repeated rejections for
   falling behind the anchor, restart the weights from the served version;
4. fold the events into the trainer's own user sequences;
5. train on the affected users' newest entries (with ``online.context`` entries of context before them),
   mixed with random spans of users replayed from the reservoir buffer (anti-forgetting), using the
   same :func:`~freshrec.model.train.train_step` as offline training; up to ``online.steps_per_batch``
   steps while caught up, one while a micro-batch of events is already waiting;
6. checkpoint weights + committed offset atomically.

A crash anywhere before 6 leaves the previous checkpoint, so the batch is trained again: at-least-once,
never skipped. If the current version is changed from outside (rollback, a full retrain), the trainer
restarts from that version and its offsets.
"""

from __future__ import annotations

import copy
import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
import torch

from freshrec.config import OnlineSettings
from freshrec.content.mapping import ContentMapping, fit_for_model
from freshrec.events.base import iter_events
from freshrec.model.data import Batch, EvalSet, pad_histories
from freshrec.model.device import amp_dtype
from freshrec.model.losses import make_loss
from freshrec.model.rowmap import RowMap
from freshrec.model.sasrec import SASRec
from freshrec.model.train import make_optimizer, train_step
from freshrec.online.buffer import ReservoirBuffer
from freshrec.online.checkpoint import CheckpointStore, TrainerState
from freshrec.online.gate import Anchor, Contender, GateDecision, GateLog, compare, holdout_ranks
from freshrec.online.growth import ContentRows, grow, initial_rows, reset_rows
from freshrec.schema import EventRecord
from freshrec.sequence import UserSequence

if TYPE_CHECKING:
    from freshrec.engine import Engine

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    first_offset: int
    last_offset: int
    events: int
    trained_users: int
    replayed_users: int
    new_items: int
    loss: float | None
    seconds: float
    decision: GateDecision | None = None
    published: str | None = None
    steps: int = 0  # optimisation steps taken (online.steps_per_batch while caught up, else 1)
    rebuilt_rows: int = 0  # rows of never-trained catalogue items rebuilt on their first events


#: Length quantiles at which a micro-batch's rows are cut into parts (pack_rows).
PACK_QUANTILES = (0.5, 0.8, 0.95)


def pack_rows(
    rows_x: list[np.ndarray],
    rows_t: list[np.ndarray],
    rows_y: list[np.ndarray],
    quantiles: Sequence[float] = PACK_QUANTILES,
) -> list[Batch]:
    """Rows of different lengths -> batches of similar lengths, each right-padded to its own longest row.

    A user with a burst of new events makes a long row; padding every row to it wasted about half of
    each micro-batch's compute on the generated shop. Rows are sorted by length and cut at these length
    quantiles (a handful of parts: each costs a forward/backward call).

    Example
    -------
    >>> rows = [np.arange(1, n + 1) for n in (3, 3, 3, 9)]
    >>> [tuple(b.items.shape) for b in pack_rows(rows, rows, rows, quantiles=(0.5,))]
    [(3, 3), (1, 9)]
    """
    order = np.argsort([len(x) for x in rows_x], kind="stable")
    lengths = np.array([len(rows_x[r]) for r in order])
    cuts = sorted({int(np.searchsorted(lengths, np.quantile(lengths, q), side="right")) for q in quantiles})
    bounds = [0, *(c for c in cuts if 0 < c < len(order)), len(order)]
    parts = []
    for lo, hi in itertools.pairwise(bounds):
        members = order[lo:hi]
        width = int(lengths[hi - 1])
        out = [np.zeros((len(members), width), dtype=np.int64) for _ in range(3)]
        for r, m in enumerate(members):
            x, t, y = rows_x[m], rows_t[m], rows_y[m]
            out[0][r, : len(x)], out[1][r, : len(t)], out[2][r, : len(y)] = x, t, y
        parts.append(Batch(*(torch.from_numpy(a) for a in out)))
    return parts


class OnlineTrainer:
    """Continual learning from the event log; see the module docstring.

    ``content`` optionally initialises new item rows from their content (the cold-start mapping).
    """

    def __init__(
        self, engine: Engine, settings: OnlineSettings | None = None, content: ContentRows | None = None
    ) -> None:
        self.engine = engine
        self.settings = settings or engine.settings.online
        self.registry = engine.registry
        self.catalog = engine.catalog
        self.types = engine.types
        # Default: the cold-start mapping, refitted on this trainer's own table whenever it grows.
        self.content = content if content is not None else (self._content_rows if engine.content is not None else None)
        self.gate_log = GateLog(self.registry.root)
        self.checkpoints = CheckpointStore(self.registry.root / "trainer")
        # fine-tuning keeps the objective the model was trained with (train.exclude_seen)
        self.loss = make_loss(self.settings.loss, self.settings.negatives, engine.settings.train.exclude_seen)
        self.device = torch.device("cpu")
        self.amp = amp_dtype(self.device, engine.settings.train.precision)
        self._rng = np.random.default_rng(engine.settings.train.seed)
        self._last_publish_attempt = time.monotonic()
        self._last_batch_at = time.monotonic()
        self._last_batch: tuple[list[EventRecord], list[int]] | None = None
        self._load()

    def _content_rows(self, catalog_idx: Sequence[int]) -> torch.Tensor | None:
        """Rows for new items mapped from their content into this model's item space (NaN: no content)."""
        store, cfg = self.engine.content, self.engine.settings.content
        if store is None or not store.fitted:
            return None
        new_x, new_has = store.vectors(np.asarray(catalog_idx, dtype=np.int64))
        if not new_has.any():
            return None

        # The ridge fit is ~5% of a micro-batch: reuse it for a while, since one micro-batch at the online
        # learning rate barely moves the table it was fitted on.
        def fit() -> ContentMapping | None:
            table = self.model.item_emb.weight.detach().float().numpy()
            warm = np.arange(1, len(self.row_map.catalog_of_row))
            return fit_for_model(store, self.row_map.catalog_of_row, table, warm, cfg, self._rng)

        mapping = self._mapping.get(fit)
        if mapping is None:
            return None
        out = torch.full((len(catalog_idx), self.model.config.width), float("nan"))
        out[torch.from_numpy(new_has)] = torch.from_numpy(mapping.predict(new_x[new_has]))
        return out

    # ---- state -----------------------------------------------------------------------------------

    def _load(self) -> None:
        current = self.registry.current()
        restored = self.checkpoints.load()
        if restored is not None and restored[2].base_version == current:
            self.model, self.item_ids, self.state = restored
        else:
            if current is None:
                raise RuntimeError("the online trainer needs a model version to start from: run `freshrec train`")
            if restored is not None:
                log.info("current version %s changed outside the trainer: restarting from it", current)
            loaded = self.registry.load(current)
            offset = (loaded.meta.get("offsets") or {}).get("to") or loaded.meta.get("data", {}).get("max_offset", 0)
            self.model, self.item_ids = loaded.model, list(loaded.item_ids)
            self.state = TrainerState(
                committed_offset=int(offset),
                base_version=current,
                since_publish_from=int(offset) + 1,
                # A crash between publishing and checkpointing lands here: keep the lineage's record.
                trained_ranges=[list(r) for r in loaded.meta.get("trained_ranges", [])],
            )
        self._adopt(self.model)
        # Items whose rows never trained (see pipeline.untrained_items); they leave the set once seen here.
        self.untrained = set(self.registry.meta(self.state.base_version).get("untrained_items") or [])
        self.row_map = RowMap.from_item_ids(self.catalog, self.item_ids)
        self.max_len = self.model.config.max_len
        self._rebuild_sequences()
        self._current_cache: tuple[str, Contender] | None = None
        # the current version's ranks on the fixed older holdout: scored once per version, not per decision
        self._older_ranks: tuple[str, np.ndarray] | None = None
        # Both only read the table's broad shape, which one micro-batch barely moves: reused for a while.
        self._mapping: _Expiring[ContentMapping | None] = _Expiring(self.settings.content_refit_s)
        self._user_vectors: _Expiring[torch.Tensor | None] = _Expiring(self.settings.content_refit_s)
        self._rejections = 0
        self.older_holdout = self.checkpoints.load_holdout() or self._make_older_holdout()
        if "anchor" not in self.older_holdout:
            # The lineage's first version scored once on the holdout: every later candidate is held to
            # it too, so per-version losses inside the tolerance cannot compound (a holdout saved by an
            # earlier release gets its anchor from the version current now).
            version, contender = self._current_model()
            if version is None or contender is None:  # _load checked this above; a concurrent removal lands here
                raise RuntimeError("the online trainer needs a current model version to anchor its holdout")
            ranks = holdout_ranks(contender, self.older_eval_set())
            self.older_holdout["anchor"] = Anchor.from_ranks(version, ranks).to_dict()
            self.checkpoints.save_holdout(self.older_holdout)
            self._older_ranks = (version, ranks)  # the first gate decision needs them too
        self.anchor = Anchor.from_dict(self.older_holdout["anchor"])
        self._older_users = set(self.older_holdout["users"])

    def _adopt(self, model: SASRec) -> None:
        """Train ``model`` from here on: online dropout, train mode, a fresh optimizer."""
        self.model = model.to(self.device)
        if self.settings.dropout is not None:
            self.model.set_dropout(self.settings.dropout)
        self.model.train()
        self.optimizer = make_optimizer(
            self.model, self.settings.lr, self.engine.settings.train.weight_decay, self.settings.item_lr_scale
        )
        self._base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self._steps = 0

    def _step(self, batch: list[Batch]) -> float:
        """One optimisation step, the learning rate ramped up linearly over the optimizer's first
        ``online.warmup_steps``: a fresh AdamW moves every weight by ~lr in its first steps whatever the
        gradient's size, and the shop replay's first candidates fell behind the older holdout from it."""
        self._steps += 1
        ramp = min(1.0, self._steps / self.settings.warmup_steps) if self.settings.warmup_steps else 1.0
        for group, base in zip(self.optimizer.param_groups, self._base_lrs, strict=True):
            group["lr"] = base * ramp
        return train_step(self.model, self.optimizer, batch, self.loss, self.device, self.amp)

    def _rebuild_sequences(self) -> None:
        self.sequences: dict[str, UserSequence] = {}
        self.buffer = ReservoirBuffer(self.settings.buffer_size, seed=self.engine.settings.train.seed)
        page: list[EventRecord] = []

        def flush() -> None:
            self._fold(page, self.catalog.internal_ids([e.item_id for e in page], create=True))
            page.clear()

        for e in iter_events(self.engine.event_log):
            if e.offset > self.state.committed_offset:
                break
            page.append(e)
            if len(page) >= 50_000:
                flush()
        flush()

    def _fold(self, events: Sequence[EventRecord], idx: Sequence[int]) -> list[str]:
        """Add events to the trainer's user sequences and the replay buffer; returns the user of each
        event that added a sequence entry (in order, repeats included)."""
        collapse = self.engine.settings.state.collapse_repeats
        code, negative = self.types.code, self.types.negative
        added = []
        for e, i in zip(events, idx, strict=True):
            seq = self.sequences.get(e.user_id)
            if seq is None:
                seq = self.sequences[e.user_id] = UserSequence(self.max_len + 1, collapse)
            if seq.add(i, code.get(e.type, 0), e.ts, e.type in negative):
                added.append(e.user_id)
        self.buffer.extend(added)
        return added

    def _make_older_holdout(self) -> dict[str, Any]:
        """Each sampled user's last entry as of the start, in catalogue indices (fixed for good).

        Only the last entry: a full training run (``freshrec train``, and the replay's model at the cut)
        holds it out, so it measures what the model generalises to; earlier entries are training targets the
        base model has memorised, and any fine-tuning erodes memorisation (with five entries per user the
        replay's Amazon model scored 0.17 there against 0.03 on new events, and every candidate "forgot")."""
        users = [u for u, s in self.sequences.items() if len(s) >= 2]
        # at most a fifth of the users: the rest must stay available to the replay buffer
        size = min(self.settings.gate_older_users, len(users) // 5)
        picks = self._rng.choice(len(users), size=size, replace=False)
        chosen = [users[i] for i in sorted(picks)]
        return {
            "users": chosen,
            "items": [self.sequences[u].item_array()[:-1].tolist() for u in chosen],
            "types": [self.sequences[u].type_array()[:-1].tolist() for u in chosen],
            "targets": [int(self.sequences[u].item_array()[-1]) for u in chosen],
        }

    def older_eval_set(self) -> EvalSet:
        """The fixed older holdout (forgetting), in catalogue indices."""
        older = self.older_holdout
        return EvalSet(
            older["users"],
            [np.asarray(x, dtype=np.int64) for x in older["items"]],
            [np.asarray(t, dtype=np.int64) for t in older["types"]],
            np.asarray(older["targets"], dtype=np.int64),
        )

    def _rows(self, catalog_idx: np.ndarray) -> np.ndarray:
        return self.row_map.rows(catalog_idx)

    # ---- one micro-batch -------------------------------------------------------------------------

    def due(self, pending: int) -> bool:
        """Whether enough has accumulated to train now (events, or time since the last batch)."""
        if pending >= self.settings.micro_batch_events:
            return True
        return pending > 0 and time.monotonic() - self._last_batch_at >= self.settings.micro_batch_seconds

    def poll(self, force: bool = False) -> BatchReport | None:
        """Train one micro-batch if one is due (``force``: whatever is there). ``None`` when idle.

        A micro-batch is up to ``online.micro_batch_events`` events, or up to ``online.catch_up_events``
        while more than that are waiting: a trainer that has fallen behind (a burst, a restart, a stream
        faster than its steps) takes fewer, larger steps until it has caught up, instead of falling
        further behind at a fixed number of events per step.
        """
        self._follow_external_changes()
        limit = max(self.settings.micro_batch_events, self.settings.catch_up_events)
        events = self.engine.event_log.read(self.state.committed_offset, limit)
        if not events or not (force or self.due(len(events))):
            self._publish_in_lull()
            return None
        return self.process(events)

    def _publish_in_lull(self) -> None:
        """Publish what was trained before the stream went quiet, judged on the last batch's events;
        otherwise those weights would wait for the next event however long that takes."""
        last, idle = self._last_batch, self.settings.idle_publish_s
        if (
            last is None
            or not idle
            or self.state.committed_offset < self.state.since_publish_from
            or time.monotonic() - self._last_batch_at < idle
            or time.monotonic() - self._last_publish_attempt < self.settings.publish_interval_s
        ):
            return
        self._gate_and_publish(*last, recent=False)
        self.checkpoints.save(self.model, self.item_ids, self.state)

    def process(self, events: list[EventRecord]) -> BatchReport:
        started = time.perf_counter()
        idx = self.catalog.internal_ids([e.item_id for e in events], create=True)
        new_items, rebuilt = self._grow(events, idx)
        decision, published = None, None
        if time.monotonic() - self._last_publish_attempt >= self.settings.publish_interval_s:
            decision, published = self._gate_and_publish(events, idx)
        self.untrained.difference_update(e.item_id for e in events)
        fresh = Counter(self._fold(events, idx))  # user -> new entries, in order of first appearance
        replay = self.buffer.sample(
            round(self.settings.replay_ratio * len(fresh)), exclude=self._older_users | set(fresh)
        )
        batch = self._batch(fresh, replay)
        loss, steps = None, 0
        if batch is not None:
            while True:
                loss = self._step(batch)
                steps += 1
                # Extra steps only while the trainer is caught up: with a micro-batch's worth of events
                # waiting it moves on, so its capacity (events/s it keeps up with) is that of one step.
                if steps >= self.settings.steps_per_batch or self._behind(events[-1].offset):
                    break
        self.state.committed_offset = events[-1].offset
        self.state.add_range(events[0].offset, events[-1].offset)
        self._last_batch = (events, idx)
        self.state.batches += 1
        self.checkpoints.save(self.model, self.item_ids, self.state)
        self._last_batch_at = time.monotonic()
        return BatchReport(
            events[0].offset,
            events[-1].offset,
            len(events),
            len(fresh),
            len(replay),
            new_items,
            loss,
            time.perf_counter() - started,
            decision,
            published,
            steps,
            rebuilt,
        )

    def _behind(self, offset: int) -> bool:
        """At least a micro-batch of events is waiting after ``offset``."""
        return self.engine.event_log.last_offset() - offset >= self.settings.micro_batch_events

    def _walk(self, events: list[EventRecord], idx: list[int], want: Callable[[EventRecord, int], bool] | None = None):
        """Events in order with each user's history just before it (sequence + earlier events of this
        batch), as catalogue indices; the trainer's sequences are not modified. With ``want``, only the
        events it accepts are yielded (building their histories is the costly part)."""
        pending: dict[str, tuple[list[int], list[int]]] = {}
        code, negative = self.types.code, self.types.negative
        for e, i in zip(events, idx, strict=True):
            seq = self.sequences.get(e.user_id)
            extra_items, extra_types = pending.setdefault(e.user_id, ([], []))
            if want is None or want(e, i):
                base_items = seq.item_array() if seq is not None else np.zeros(0, dtype=np.int64)
                base_types = seq.type_array() if seq is not None else np.zeros(0, dtype=np.int64)
                history = np.concatenate([base_items, np.asarray(extra_items, dtype=np.int64)])
                types = np.concatenate([base_types, np.asarray(extra_types, dtype=np.int64)])
                yield e, i, history, types
            last = extra_items[-1] if extra_items else (seq.items[-1] if seq is not None and len(seq) else None)
            if e.type not in negative and last != i:
                extra_items.append(i)
                extra_types.append(code.get(e.type, 0))

    def _grow(self, events: list[EventRecord], idx: list[int]) -> tuple[int, int]:
        """Give items first seen in this batch a row: append rows for items the model has none for, and
        rebuild the rows of items it has one for that never trained (catalogue items without a single
        event in the base version's training data: such a row only learned to lose, and serving scores
        those items from their content until now). Both are built the same way (content, co-occurrence,
        random; then calibrated). Returns (rows appended, rows rebuilt)."""
        idx_arr = np.asarray(idx, dtype=np.int64)
        rows = self._rows(idx_arr)
        unknown = [int(i) for i in dict.fromkeys(idx_arr[rows == 0].tolist())]
        # never-trained items of this batch -> their existing row
        stale_rows = {
            int(i): int(r) for e, i, r in zip(events, idx, rows, strict=True) if r and e.item_id in self.untrained
        }
        stale = list(stale_rows)
        if not unknown and not stale:
            return 0, 0
        wanted, negative = set(unknown) | set(stale), self.types.negative
        owners, histories, history_types = [], [], []
        for _e, i, history, types in self._walk(events, idx, lambda e, i: i in wanted and e.type not in negative):
            readable = self._readable(history, types)
            if readable is not None:
                owners.append(i)
                histories.append(readable[0])
                history_types.append(readable[1])
        contexts: dict[int, torch.Tensor] = {}
        if owners:
            users = self._encode(histories, history_types)
            chooser_rows: dict[int, list[int]] = {}
            for j, i in enumerate(owners):
                chooser_rows.setdefault(i, []).append(j)
            contexts = {i: users[js] for i, js in chooser_rows.items()}
        mode = self.settings.new_row_calibration
        sample = self._user_sample() if mode != "none" else None
        rates = None
        if mode == "frequency":
            chosen = [i for e, i in zip(events, idx, strict=True) if e.type not in negative]
            counts = Counter(i for i in chosen if i in wanted)
            rates = torch.tensor([counts[i] / max(len(chosen), 1) for i in unknown + stale])
        built, how = initial_rows(self.model, unknown + stale, contexts, self.content, users=sample, rates=rates)
        if stale:
            reset_rows(self.model, self.optimizer, list(stale_rows.values()), built[len(unknown) :])
        if unknown:
            grow(self.model, self.optimizer, built[: len(unknown)])
            self.item_ids.extend(self.catalog.external_id(i) for i in unknown)
            self.row_map = self.row_map.extended(unknown)
        log.info(
            "new rows for %d items, %d rebuilt (%s)", len(unknown), len(stale), {k: how.count(k) for k in set(how)}
        )
        return len(unknown), len(stale)

    def _encode(self, histories: list[np.ndarray], types: list[np.ndarray]) -> torch.Tensor:
        x, t, lengths = pad_histories(histories, types, self.max_len)
        self.model.eval()
        with torch.no_grad():
            users = self.model.encode(x, lengths, t)
        self.model.train()
        return users

    def _user_sample(self, size: int = 256) -> torch.Tensor | None:
        """User vectors of a random sample of known users (new rows are calibrated against them).

        Reused for ``online.content_refit_s`` like the content mapping: encoding 256 whole histories cost
        ~11% of the trainer's time when new items arrived in most micro-batches, and calibration reads only
        their mean direction, which one micro-batch barely moves."""

        def encode() -> torch.Tensor | None:
            histories, types = [], []
            for user in self.buffer.sample(size):
                seq = self.sequences[user]
                readable = self._readable(seq.item_array(), seq.type_array())
                if readable is not None:
                    histories.append(readable[0])
                    types.append(readable[1])
            return self._encode(histories, types) if histories else None

        return self._user_vectors.get(encode)

    def _readable(self, items: np.ndarray, types: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The newest ``max_len`` entries of a catalogue-index history as model rows, dropping entries the
        model has no row for; ``None`` when nothing is left."""
        rows = self._rows(items[-self.max_len :])
        keep = rows > 0
        return (rows[keep], types[-self.max_len :][keep]) if keep.any() else None

    def _batch(self, fresh: dict[str, int], replay: list[str]) -> list[Batch] | None:
        """Affected users: their new entries are targets. Replayed users: a random span of
        ``online.replay_span`` entries from anywhere in their sequence. Both get ``online.context``
        entries of context before the targets, so every row is short and the batch is not padded out to
        ``max_len`` (training whole 200-entry windows for replay made it ~8x slower, and let replay
        outweigh the new events 30 to 1 in the loss). Rows are packed by length into a few parts that
        make one optimisation step (see :func:`pack_rows`)."""
        context, span = self.settings.context, self.settings.replay_span
        rows_x, rows_t, rows_y = [], [], []
        for user, n_new in [*fresh.items(), *((u, None) for u in replay)]:
            seq = self.sequences[user]
            items, types = seq.item_array(), seq.type_array()
            end = len(items)
            if n_new is None:
                n_new = min(span, end - 1)
                if n_new < 1:
                    continue
                # span ends at a uniform position: every part of an old history gets replayed in time
                end = int(self._rng.integers(n_new + 1, end + 1))
            window = min(end, n_new + context + 1, self.max_len + 1)
            # only the window is mapped to rows: most of a 200-entry sequence is not read
            items, types = self._rows(items[end - window : end]), types[end - window : end]
            if len(items) < 2:
                continue
            x, t, y = items[:-1], types[:-1], items[1:].copy()
            y[: max(0, len(y) - n_new)] = 0  # only the new (or replayed) entries are targets
            y[x == 0] = 0
            rows_x.append(x)
            rows_t.append(t)
            rows_y.append(y)
        if not rows_x or not any((y > 0).any() for y in rows_y):
            return None
        return pack_rows(rows_x, rows_t, rows_y)

    # ---- gate and publish ------------------------------------------------------------------------

    def _recent_holdout(self, events: list[EventRecord], idx: list[int]) -> EvalSet:
        """Each user's first new-to-them positive event in this batch, scored from the history before it."""
        users, items, types, targets = [], [], [], []
        taken: set[str] = set()
        negative, older = self.types.negative, self._older_users

        def candidate(e: EventRecord, _: int) -> bool:
            return e.type not in negative and e.user_id not in taken and e.user_id not in older

        for e, i, history, history_types in self._walk(events, idx, candidate):
            if not len(history) or i in set(history.tolist()):
                continue
            taken.add(e.user_id)
            users.append(e.user_id)
            items.append(history)
            types.append(history_types)
            targets.append(i)
            if len(users) >= self.settings.gate_recent_users:
                break
        return EvalSet(users, items, types, np.asarray(targets, dtype=np.int64))

    def _current_model(self) -> tuple[str | None, Contender | None]:
        current = self.registry.current()
        if current is None:
            return None, None
        if self._current_cache is None or self._current_cache[0] != current:
            loaded = self.registry.load(current)
            rows = RowMap.from_item_ids(self.catalog, loaded.item_ids).rows
            self._current_cache = (current, (loaded.model, rows))
        return current, self._current_cache[1]

    def _gate_and_publish(
        self, events: list[EventRecord], idx: list[int], recent: bool = True
    ) -> tuple[GateDecision | None, str | None]:
        self._last_publish_attempt = time.monotonic()
        if self.state.committed_offset < self.state.since_publish_from or self.registry.pinned():
            return None, None  # nothing new to judge, or publishing is frozen: skip the costly comparison
        current_version, current = self._current_model()
        holdouts = {"older": self.older_eval_set()}
        if recent:  # events not trained on yet; in a lull there are none, so only forgetting is judged
            holdouts["recent"] = self._recent_holdout(events, idx)
        decision = compare(
            (self.model, self.row_map.rows),
            current,
            holdouts,
            self.settings.gate_tolerance,
            current_version,
            self.settings.gate_noise_z,
            anchors={"older": self.anchor},
            current_ranks={"older": self._older_ranks[1]}
            if self._older_ranks is not None and self._older_ranks[0] == current_version
            else None,
        )
        if current_version is not None and "older" in decision.ranks["current"]:
            self._older_ranks = (current_version, decision.ranks["current"]["older"])
        decision.context = {
            "trained_offsets": [self.state.since_publish_from, self.state.committed_offset],
            "evaluated_on_offsets": [events[0].offset, events[-1].offset],
        }
        published = None
        if decision.accepted:
            candidate = copy.deepcopy(self.model).eval()
            published = self.registry.publish(
                candidate,
                list(self.item_ids),
                self.types.names,
                {
                    "kind": "online",
                    "holdout": "none",
                    "offsets": {"from": self.state.since_publish_from, "to": self.state.committed_offset},
                    "trained_ranges": self.state.trained_ranges[-20:],
                    "untrained_items": sorted(self.untrained),
                    "metrics": {"gate": decision.figures},
                    "data": {"max_offset": self.state.committed_offset},
                    "gate": {"reason": decision.reason, "tolerance": decision.tolerance},
                },
                parent=current_version,
            )
            decision.candidate_version = published
            self.state.since_publish_from = self.state.committed_offset + 1
            self.state.base_version = published
            self._current_cache = (published, (candidate, self.row_map.rows))
            if "older" in decision.ranks["candidate"]:
                self._older_ranks = (published, decision.ranks["candidate"]["older"])
        if not decision.behind_lineage:
            self._rejections = 0
        elif current_version is not None:
            # Only drift counts: a rejection on one batch's newest events alone is often noise that the
            # next micro-batches train away, and restarting on it threw good training away (shop replay).
            self._rejections += 1
            limit = self.settings.resync_after_rejections
            if limit and self._rejections >= limit:
                decision.context["resynced"] = self._resync(current_version)
        self.gate_log.append(decision)
        return decision, published

    def _resync(self, version: str) -> dict[str, Any]:
        """After repeated rejections for falling behind the lineage's first version, the trainer's weights
        have drifted where the gate will not follow (training on would only drift further while serving
        goes stale): restart them from the served version. Rows of items added since then keep their
        trained values; the optimizer starts afresh. The discarded offsets stay in the user sequences and
        the replay buffer, and leave the lineage's record of offsets trained on."""
        loaded = self.registry.load(version)
        known = len(loaded.item_ids)
        if list(loaded.item_ids) != self.item_ids[:known]:
            raise RuntimeError(f"version {version} is not in the trainer's lineage: cannot resync to it")
        model = loaded.model
        extra = self.model.item_emb.weight.detach()[known + 1 :].float().clone()
        if len(extra):
            grow(model, None, extra)
        self._adopt(model)
        discarded = [self.state.since_publish_from, self.state.committed_offset]
        self.state.trained_ranges = _without(self.state.trained_ranges, *discarded)
        self.state.since_publish_from = self.state.committed_offset + 1
        self._rejections = 0
        self._mapping.clear()
        self._user_vectors.clear()
        limit = self.settings.resync_after_rejections
        log.warning(
            "%d rejections in a row behind the lineage: the trainer restarts its weights from %s", limit, version
        )
        return {"to": version, "discarded_offsets": discarded}

    def _follow_external_changes(self) -> None:
        """A rollback or a full retrain moved CURRENT away from our lineage: restart from it."""
        current = self.registry.current()
        if current is not None and current != self.state.base_version:
            log.warning(
                "current version is now %s (not %s): the trainer restarts from it", current, self.state.base_version
            )
            self.checkpoints.clear()
            self._load()

    # ---- loop ------------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, max_batches: int | None = None) -> int:
        """Train until ``stop`` is set (or ``max_batches`` ran); returns the number of batches."""
        stop = stop or threading.Event()
        done = 0
        while not stop.is_set() and (max_batches is None or done < max_batches):
            report = self.poll()
            if report is None:
                stop.wait(self.settings.poll_interval_s)
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


T = TypeVar("T")


class _Expiring(Generic[T]):
    """A value computed on first use and again once it is ``ttl`` seconds old (or cleared)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._held: tuple[float, T] | None = None

    def get(self, make: Callable[[], T]) -> T:
        if self._held is None or time.monotonic() - self._held[0] >= self.ttl:
            self._held = (time.monotonic(), make())
        return self._held[1]

    def clear(self) -> None:
        self._held = None


def _without(ranges: list[list[int]], first: int, last: int) -> list[list[int]]:
    """Merged offset ranges minus [first, last]."""
    out = []
    for lo, hi in ranges:
        if lo < first:
            out.append([lo, min(hi, first - 1)])
        if hi > last:
            out.append([max(lo, last + 1), hi])
    return out

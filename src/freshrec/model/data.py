"""From the event log to training batches: user sequences, the leave-one-out split, padded batches.

Shapes use B (batch), L (sequence length), N (catalogue size). Item values are catalogue indices
(1..N, 0 = padding); a model trained from these sequences has row ``i`` for catalogue index ``i``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from freshrec.catalog.base import Catalog
from freshrec.events.base import EventLog, iter_pages
from freshrec.position import advance, as_cursor, behind, start, to_json, total
from freshrec.sequence import EventTypes, Sequences


@dataclass
class SequenceData:
    """Every user's full, time-ordered sequence as the log holds it up to cursor ``position``."""

    users: list[str]
    items: list[np.ndarray]  # per user: [S] int64 catalogue indices, oldest first
    types: list[np.ndarray]  # per user: [S] int64 event-type codes
    num_items: int
    position: tuple[int, ...] = (0,)
    num_events: int = 0
    first_ts: float | None = None
    last_ts: float | None = None

    def data_range(self) -> dict:
        return {
            "max_offset": to_json(self.position),
            "events": self.num_events,
            "users": len(self.users),
            "items": self.num_items,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
        }


def sequences_from_log(
    log: EventLog,
    catalog: Catalog,
    types: EventTypes,
    collapse_repeats: bool = True,
    upto: Sequence[int] | int | None = None,
    progress: bool = False,
) -> SequenceData:
    """Every user's full sequence up to cursor ``upto`` (default: the log's end), folded with the rule live
    state uses (:class:`~freshrec.sequence.Sequences`)."""
    last = log.ends() if upto is None else as_cursor(upto, log.partitions)
    seqs = Sequences(types, None, collapse_repeats)
    n_events, first_ts, last_ts, position = 0, None, None, start(log.partitions)
    bar = tqdm(total=behind(position, last), desc="reading events", unit="ev", disable=not progress, leave=False)
    for page in iter_pages(log, upto=last):
        seqs.fold(page, catalog.internal_ids([e.item_id for e in page], create=True))
        n_events += len(page)
        position = advance(position, (page[0].offset, page[-1].offset))
        page_ts = [e.ts for e in page]
        first_ts = min(page_ts) if first_ts is None else min(first_ts, *page_ts)
        last_ts = max(page_ts) if last_ts is None else max(last_ts, *page_ts)
        bar.update(total(position) - bar.n)
    bar.close()
    users = [u for u in seqs if len(seqs.get(u))]
    return SequenceData(
        users=users,
        items=[seqs.get(u).item_array() for u in users],
        types=[seqs.get(u).type_array() for u in users],
        num_items=len(catalog),
        position=position,
        num_events=n_events,
        first_ts=first_ts,
        last_ts=last_ts,
    )


@dataclass
class EvalSet:
    """Histories to score and the item each should rank: the offline leave-one-out protocol."""

    users: list[str]
    items: list[np.ndarray]  # per user: history [S]
    types: list[np.ndarray]
    targets: np.ndarray  # [U] catalogue index of the held-out item
    target_types: np.ndarray | None = None  # [U] event-type code of the held-out entry, when known

    def __len__(self) -> int:
        return len(self.users)

    def sample(self, n: int, rng: np.random.Generator) -> EvalSet:
        """At most ``n`` queries drawn without replacement, in their original order (the set itself when it
        has no more than ``n``).

        >>> data = EvalSet(list("abcd"), [np.array([1])] * 4, [np.array([1])] * 4, np.array([2, 3, 4, 5]))
        >>> data.sample(2, np.random.default_rng(0)).targets.tolist()
        [4, 5]
        """
        if len(self) <= n:
            return self
        return self.subset(np.sort(rng.choice(len(self), size=n, replace=False)))

    def subset(self, keep: np.ndarray) -> EvalSet:
        """The queries at positions ``keep`` (indices, or a boolean mask), in that order.

        >>> data = EvalSet(list("ab"), [np.array([1])] * 2, [np.array([1])] * 2, np.array([2, 3]), np.array([1, 4]))
        >>> data.subset(data.target_types == 4).targets.tolist()
        [3]
        """
        keep = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, dtype=np.int64)
        return EvalSet(
            [self.users[i] for i in keep],
            [self.items[i] for i in keep],
            [self.types[i] for i in keep],
            self.targets[keep],
            None if self.target_types is None else self.target_types[keep],
        )

    def remap(self, rows: Callable[[np.ndarray], np.ndarray], type_map: np.ndarray | None = None) -> EvalSet:
        """The same set in a model's row space (``rows``: catalogue indices -> rows, 0 = unknown).

        History entries the model has no row for are dropped; a target it has no row for becomes 0,
        which can never be hit (the model cannot recommend what it does not know).
        """
        mapped = [rows(s) for s in self.items]
        keep = [m > 0 for m in mapped]
        types = [t if type_map is None else type_map[t] for t in self.types]
        return EvalSet(
            self.users,
            [m[k] for m, k in zip(mapped, keep, strict=True)],
            [t[k] for t, k in zip(types, keep, strict=True)],
            rows(self.targets),
            self.target_types if self.target_types is None or type_map is None else type_map[self.target_types],
        )


@dataclass
class Split:
    """Training sequences plus validation (second-to-last item) and test (last item) sets.

    With ``holdout="test"`` (the protocol): train on s[:-2], validate on s[-2], test on s[-1].
    With ``holdout="valid"`` (for a model to serve): train on s[:-1], validate on s[-1], no test.
    Users with fewer than 3 entries (2 for ``valid``) go to training only.
    """

    train_items: list[np.ndarray]
    train_types: list[np.ndarray]
    valid: EvalSet
    test: EvalSet | None
    holdout: str = "test"
    train_users: list[str] = field(default_factory=list)


def leave_one_out(data: SequenceData, holdout: str = "test") -> Split:
    """Split per user by time. Example::

    >>> d = SequenceData(["u"], [np.array([1, 2, 3, 4])], [np.ones(4, dtype=np.int64)], num_items=4)
    >>> s = leave_one_out(d)
    >>> s.train_items[0].tolist(), s.valid.targets.tolist(), s.test.items[0].tolist(), s.test.targets.tolist()
    ([1, 2], [3], [1, 2, 3], [4])
    """
    if holdout not in ("test", "valid"):
        raise ValueError(f"holdout must be 'test' or 'valid', got {holdout!r}")
    held = 2 if holdout == "test" else 1
    train_items, train_types, train_users = [], [], []
    v_users, v_items, v_types, v_targets, v_kinds = [], [], [], [], []
    t_users, t_items, t_types, t_targets, t_kinds = [], [], [], [], []
    for user, items, types in zip(data.users, data.items, data.types, strict=True):
        n = len(items)
        if n < held + 1:
            train_items.append(items)
            train_types.append(types)
            train_users.append(user)
            continue
        train_items.append(items[: n - held])
        train_types.append(types[: n - held])
        train_users.append(user)
        v_users.append(user)
        v_items.append(items[: n - held])
        v_types.append(types[: n - held])
        v_targets.append(items[n - held])
        v_kinds.append(types[n - held])
        if holdout == "test":
            t_users.append(user)
            t_items.append(items[: n - 1])
            t_types.append(types[: n - 1])
            t_targets.append(items[n - 1])
            t_kinds.append(types[n - 1])

    def as_array(values: list) -> np.ndarray:
        return np.asarray(values, dtype=np.int64)

    valid = EvalSet(v_users, v_items, v_types, as_array(v_targets), as_array(v_kinds))
    test = EvalSet(t_users, t_items, t_types, as_array(t_targets), as_array(t_kinds)) if holdout == "test" else None
    return Split(train_items, train_types, valid, test, holdout, train_users)


@dataclass
class Batch:
    """One training batch. ``items``/``types``/``targets``: [B, L] int64, right-padded with 0;
    ``target_types``: [B, L] the event-type code of each target (what the conversion objective selects by),
    ``None`` when unknown."""

    items: torch.Tensor
    types: torch.Tensor
    targets: torch.Tensor
    target_types: torch.Tensor | None = None

    def to(self, device: torch.device) -> Batch:
        moved = [t.to(device, non_blocking=True) for t in (self.items, self.types, self.targets)]
        kinds = None if self.target_types is None else self.target_types.to(device, non_blocking=True)
        return Batch(*moved, kinds)

    @property
    def positions(self) -> int:
        return int((self.targets > 0).sum())


class TrainingBatches:
    """Next-item batches from training sequences, bucketed by length so padding costs almost nothing.

    A sequence s of S >= 2 entries yields inputs s[:-1] and targets s[1:]. When it is longer than
    ``max_len + 1``, it is cut into windows of ``max_len`` inputs (newest first), so every interaction is a
    training target once (the original SASRec keeps only the newest window). With ``overlap`` > 0 each
    window also reaches ``overlap`` entries back into the next older one, as context without targets, so
    no target but the oldest few is predicted from a short history (RecBole's per-prefix training gives
    every target a full context; this gets close for about ``max_len / (max_len - overlap)`` times the
    positions). Each epoch sorts windows by length with random tie-breaking, cuts batches, shuffles the
    batch order, and trims each batch to its longest window.

    Example
    -------
    >>> s = [np.arange(1, 12)]  # 11 entries: 10 targets
    >>> b = TrainingBatches(s, [np.ones(11, dtype=np.int64)], max_len=4, batch_size=8, overlap=2)
    >>> b.targets.tolist()  # newest window first; all but the oldest use their first 2 inputs as context only
    [[0, 0, 10, 11], [0, 0, 8, 9], [0, 0, 6, 7], [2, 3, 4, 5]]
    >>> b.positions  # every interaction is a target exactly once
    10
    """

    def __init__(
        self,
        items: Sequence[np.ndarray],
        types: Sequence[np.ndarray],
        max_len: int,
        batch_size: int,
        overlap: int = 0,
    ) -> None:
        if not 0 <= overlap < max_len:
            raise ValueError(f"train.window_overlap ({overlap}) must be below model.max_len ({max_len})")
        # (sequence, first input's target index, end target index, first scored target index)
        spans: list[tuple[int, int, int, int]] = []
        for i, s in enumerate(items):
            end = len(s)
            while end > 1:
                start = max(1, end - max_len)
                # The oldest window scores all its targets; the others leave their first ``overlap``
                # targets to the next older window.
                scored = start if start == 1 else end - (max_len - overlap)
                spans.append((i, start, end, scored))
                end = scored
        n = len(spans)
        self.lengths = np.array([end - start for _, start, end, _ in spans], dtype=np.int64)
        self.inputs = np.zeros((n, max_len), dtype=np.int64)
        self.input_types = np.zeros((n, max_len), dtype=np.int64)
        self.targets = np.zeros((n, max_len), dtype=np.int64)
        self.target_types = np.zeros((n, max_len), dtype=np.int64)
        for row, (i, start, end, scored) in enumerate(spans):
            s, t, ln = items[i], types[i], end - start
            self.inputs[row, :ln] = s[start - 1 : end - 1]
            self.input_types[row, :ln] = t[start - 1 : end - 1]
            self.targets[row, scored - start : ln] = s[scored:end]
            self.target_types[row, scored - start : ln] = t[scored:end]
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    @property
    def positions(self) -> int:
        """Scored positions per epoch."""
        return int(np.count_nonzero(self.targets))

    def epoch(self, rng: np.random.Generator) -> Iterator[Batch]:
        order = np.lexsort((rng.random(len(self.lengths)), self.lengths))
        chunks = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for c in rng.permutation(len(chunks)):
            rows = chunks[c]
            width = int(self.lengths[rows].max())
            yield Batch(
                torch.from_numpy(self.inputs[rows, :width]),
                torch.from_numpy(self.input_types[rows, :width]),
                torch.from_numpy(self.targets[rows, :width]),
                torch.from_numpy(self.target_types[rows, :width]),
            )


def pad_histories(
    items: Sequence[np.ndarray], types: Sequence[np.ndarray], max_len: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad the newest ``max_len`` entries of each history: -> items [B, L], types [B, L], lengths [B].

    Empty histories get length 1 with a padding item, so callers must route them elsewhere (trending).
    """
    lengths = [max(1, min(len(s), max_len)) for s in items]
    width = max(lengths, default=1)
    out_items = np.zeros((len(items), width), dtype=np.int64)
    out_types = np.zeros((len(items), width), dtype=np.int64)
    for row, (s, t) in enumerate(zip(items, types, strict=True)):
        ln = min(len(s), max_len)
        if ln:
            out_items[row, :ln] = s[-ln:]
            out_types[row, :ln] = t[-ln:]
    return torch.from_numpy(out_items), torch.from_numpy(out_types), torch.tensor(lengths, dtype=torch.int64)

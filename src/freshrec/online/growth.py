"""Growing the item table in place when new items arrive: no retrain, existing rows untouched.

New rows are initialised, in order of preference, from the item's content (when a content mapping is
available), from the items it co-occurs with, or from small random values at the scale of the existing
table. Co-occurrence here means the model's own reading of the sequences that led to the item: the mean
user vector of those contexts, scaled to a typical row norm. Since a score is a dot product with the user
vector, the new item then ranks high exactly where it was chosen, before any gradient step. Every new
row is then calibrated (:func:`calibrate`) so that, averaged over users, it scores like the median item:
without that, new items took most of everyone's top-10 in the Amazon replay. The
optimizer's moment estimates grow with the table (zeros for the new rows), so training continues without
resetting what it learned (:meth:`~freshrec.online.learner.Learner.append_rows`). An item that already has
a row which never trained (it was in the catalogue, without events, when the version was trained) gets
that row rebuilt the same way on its first events.

A new row then stays *young* for its first :data:`YOUNG_EVENTS` choices: after every micro-batch it is
rebuilt from everything seen so far, the mean of all its choosers' contexts blended with its content row
(worth :data:`PRIOR_EVENTS` choosers), and calibrated again. Like a co-occurrence counter, it reflects each
new chooser at once; the gradient steps of fine-tuning move a row by about the learning rate per step, far
too slowly for an item seen a handful of times. After that it trains by gradient steps alone. What the young
rows have seen is kept in memory: after a restart they train by gradient steps alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import torch

from freshrec.content.mapping import ContentMapping, fit_for_model
from freshrec.content.store import ContentStore
from freshrec.model.sasrec import SASRec
from freshrec.online.learner import History, Learner
from freshrec.schema import EventRecord

log = logging.getLogger(__name__)

#: content initialiser: catalogue indices of new items -> [M, D] rows, with NaN rows where it has no content
ContentRows = Callable[[Sequence[int]], torch.Tensor | None]
#: Seconds the content -> row mapping and the calibration sample of users are reused: both read only the
#: item table's broad shape, which one micro-batch barely moves, and refitting them cost ~5% and ~11% of a
#: micro-batch when new items arrived in most of them.
REFIT_S = 60.0
#: Known users whose vectors new rows are calibrated against.
CALIBRATION_USERS = 256
#: Choices of a new item during which its row is rebuilt from its choosers' contexts after every micro-batch.
YOUNG_EVENTS = 20
#: What an item's content row weighs against its choosers' contexts, in choosers.
PRIOR_EVENTS = 1.0


def initial_rows(
    model: SASRec,
    new_catalog_idx: Sequence[int],
    contexts: dict[int, torch.Tensor],
    content: ContentRows | None = None,
    generator: torch.Generator | None = None,
    users: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list[str]]:
    """Rows for new items and how each was initialised ("content", "co-occurrence", "random").

    ``contexts[catalog_idx]``: [C, D] user vectors of the sequences just before the item was chosen.
    ``users``: [U, D] a sample of user vectors; with it each new row is moved along the mean user direction
    until its mean score over the sample is the median existing item's (see :func:`calibrate`).
    """
    table = model.item_emb.weight.detach()
    known = table[1:]
    scale = float(known.std()) if known.shape[0] > 1 else model.config.dim**-0.5
    norm = typical_norm(model)
    rows = torch.randn(len(new_catalog_idx), table.shape[1], generator=generator) * scale * 0.1
    how = ["random"] * len(new_catalog_idx)
    from_content = content(new_catalog_idx) if content is not None else None
    for j, idx in enumerate(new_catalog_idx):
        if from_content is not None and not torch.isnan(from_content[j]).any():
            rows[j] = from_content[j]
            how[j] = "content"
        elif idx in contexts and len(contexts[idx]):
            rows[j] = scaled(contexts[idx].float().mean(0), norm)
            how[j] = "co-occurrence"
    if users is not None and len(users) and known.shape[0]:
        rows = calibrate(rows, known.float(), users.float())
    return rows, how


def typical_norm(model: SASRec) -> float:
    """The mean norm of the model's item rows (what a row built from contexts is scaled to)."""
    known = model.item_emb.weight.detach()[1:]
    return float(known.norm(dim=1).mean()) if known.shape[0] else 1.0


def scaled(vector: torch.Tensor, norm: float) -> torch.Tensor:
    """``vector`` at length ``norm``."""
    return vector * (norm / max(float(vector.norm()), 1e-8))


@dataclass
class YoungRow:
    """A new row's evidence so far: its content row (``None``: none) and the sum of its choosers' contexts."""

    prior: torch.Tensor | None
    total: torch.Tensor | None = None
    n: int = 0

    def add(self, contexts: torch.Tensor) -> None:
        summed = contexts.float().sum(0)
        self.total = summed if self.total is None else self.total + summed
        self.n += len(contexts)

    def row(self, norm: float) -> torch.Tensor | None:
        """The choosers' mean context at a typical row norm, blended with the content row (before calibration).

        >>> young = YoungRow(torch.tensor([0.0, 2.0]))
        >>> young.add(torch.tensor([[3.0, 0.0], [1.0, 0.0]]))
        >>> young.row(2.0)  # two choosers against a content row worth one
        tensor([1.3333, 0.6667])
        """
        if self.total is None or not self.n:
            return None
        from_contexts = scaled(self.total / self.n, norm)
        if self.prior is None:
            return from_contexts
        return (PRIOR_EVENTS * self.prior.float() + self.n * from_contexts) / (PRIOR_EVENTS + self.n)


def calibrate(rows: torch.Tensor, known: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
    """Shift ``rows`` along the mean user vector so each one's mean score over ``users`` equals the median
    of the ``known`` items' mean scores; the part of a row orthogonal to that direction (what makes it
    score high for *some* users) is kept.

    Why: a row built from content (a ridge prediction shrinks towards the average item) or from the mean
    of the users who chose it points along the direction every user vector shares, so it scored high for
    everyone — on the Amazon replay 50 new items took 94% of every older user's top-10 after one
    micro-batch, and the gate rightly rejected every candidate.

    >>> import torch
    >>> users = torch.tensor([[1.0, 1.0], [1.0, -1.0]])  # they share the direction (1, 0)
    >>> known = torch.tensor([[0.1, 0.0], [0.2, 0.5], [0.3, 0.0]])
    >>> calibrate(torch.tensor([[5.0, 1.0]]), known, users)  # mean score 0.2, like the median item
    tensor([[0.2000, 1.0000]])
    """
    direction = users.mean(0)
    size = float(direction @ direction)
    if size <= 1e-12:
        return rows
    target = (known @ direction).median()
    return rows - ((rows @ direction - target) / size).unsqueeze(1) * direction


class TableGrowth:
    """Gives the items of a micro-batch that have no trained row one (the online trainer's growth job).

    Items the model has no row for get rows appended; items with a row that never trained (catalogue items
    without a single event in the base version's training data: such a row only learned to lose, and
    serving scores those items from their content until then) get that row rebuilt. Both are built the same
    way: from content, else from the choosers' co-occurrence, else random; then calibrated.

    Parameters
    ----------
    content
        The content store (new rows from content when it is fitted); ``None``: no content.
    seed
        Seeds the mapping's sample of warm rows.
    """

    def __init__(self, content: ContentStore | None, seed: int = 0) -> None:
        self.content = content
        self._rng = np.random.default_rng(seed)
        self._mapping: _Expiring[ContentMapping | None] = _Expiring(REFIT_S)
        self._users: _Expiring[torch.Tensor | None] = _Expiring(REFIT_S)
        self.young: dict[int, YoungRow] = {}  # catalogue index -> evidence of a row still young

    def clear(self) -> None:
        """Forget the cached mapping, user sample and young rows' evidence (the weights were replaced)."""
        self._mapping.clear()
        self._users.clear()
        self.young.clear()

    def apply(
        self,
        learner: Learner,
        events: Sequence[EventRecord],
        idx: Sequence[int],
        histories: dict[int, History],
        untrained: set[str],
        known_users: Callable[[], list[History]],
    ) -> tuple[int, int]:
        """Rows for this batch's items that need one. ``histories[j]``: the history event ``j`` was chosen
        after (positive events only); ``untrained``: external ids of never-trained rows; ``known_users``: a
        random sample of known users' histories (called only when rows are built). Returns (rows appended,
        rows rebuilt)."""
        idx_arr = np.asarray(idx, dtype=np.int64)
        rows = learner.rows(idx_arr)
        unknown = [int(i) for i in dict.fromkeys(idx_arr[rows == 0].tolist())]
        stale = {int(i): int(r) for e, i, r in zip(events, idx, rows, strict=True) if r and e.item_id in untrained}
        wanted = set(unknown) | set(stale)
        touched = wanted | {int(idx[j]) for j in histories if int(idx[j]) in self.young}
        if not touched:
            return 0, 0
        chosen = [(int(idx[j]), learner.readable(h)) for j, h in histories.items() if int(idx[j]) in touched]
        chosen = [(i, h) for i, h in chosen if h is not None]
        contexts: dict[int, torch.Tensor] = {}
        if chosen:
            vectors = learner.encode([h for _, h in chosen])
            by_item: dict[int, list[int]] = {}
            for j, (i, _) in enumerate(chosen):
                by_item.setdefault(i, []).append(j)
            contexts = {i: vectors[js] for i, js in by_item.items()}
        users = self._sample(learner, known_users)
        if wanted:
            targets = unknown + list(stale)
            content = self.content_rows(learner) if self.content is not None else None
            built, how = initial_rows(learner.model, targets, contexts, content, users=users)
            if stale:
                learner.rebuild_rows(list(stale.values()), built[len(unknown) :])
            if unknown:
                learner.append_rows(unknown, built[: len(unknown)])
            for i, row, kind in zip(targets, built, how, strict=True):
                self.young[i] = YoungRow(row.clone() if kind == "content" else None)
            log.info(
                "new rows for %d items, %d rebuilt (%s)", len(unknown), len(stale), {k: how.count(k) for k in set(how)}
            )
        self._grow_up(learner, contexts, users)
        return len(unknown), len(stale)

    def _grow_up(self, learner: Learner, contexts: dict[int, torch.Tensor], users: torch.Tensor | None) -> None:
        """Rebuild the young rows chosen in this batch from all their evidence; retire those old enough."""
        norm = typical_norm(learner.model)
        items, values = [], []
        for i, ctx in contexts.items():
            young = self.young.get(i)
            if young is None:
                continue
            young.add(ctx)
            row = young.row(norm)
            if row is not None:
                items.append(i)
                values.append(row)
            if young.n >= YOUNG_EVENTS:
                del self.young[i]
        if not items:
            return
        rows = torch.stack(values)
        known = learner.model.item_emb.weight.detach()[1:].float()
        if users is not None and len(users) and known.shape[0]:
            rows = calibrate(rows, known, users.float())
        learner.rebuild_rows(learner.rows(np.asarray(items, dtype=np.int64)).tolist(), rows)

    def _sample(self, learner: Learner, known_users: Callable[[], list[History]]) -> torch.Tensor | None:
        def encode() -> torch.Tensor | None:
            readable = [r for r in map(learner.readable, known_users()) if r is not None]
            return learner.encode(readable) if readable else None

        return self._users.get(encode)

    def content_rows(self, learner: Learner) -> ContentRows:
        """The content initialiser for ``learner``'s item space: catalogue indices -> rows mapped from the
        items' content (NaN rows for items without content; ``None`` when nothing can be mapped)."""
        store = self.content

        def rows(catalog_idx: Sequence[int]) -> torch.Tensor | None:
            if store is None or not store.fitted:
                return None
            new_x, new_has = store.vectors(np.asarray(catalog_idx, dtype=np.int64))
            if not new_has.any():
                return None

            def fit() -> ContentMapping | None:
                table = learner.model.item_emb.weight.detach().float().numpy()
                warm = np.arange(1, len(learner.row_map.catalog_of_row))
                return fit_for_model(store, learner.row_map.catalog_of_row, table, warm, self._rng)

            mapping = self._mapping.get(fit)
            if mapping is None:
                return None
            out = torch.full((len(catalog_idx), learner.model.config.dim), float("nan"))
            out[torch.from_numpy(new_has)] = torch.from_numpy(mapping.predict(new_x[new_has]))
            return out

        return rows


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

"""The online trainer's micro-batches: short rows of new (and replayed) entries with a little context.

Each affected user contributes its newest entries as targets; each replayed user a random span of
:data:`REPLAY_SPAN` entries from anywhere in its sequence. Both get :data:`CONTEXT` entries of context
before the targets, so every row is short and the batch is not padded out to ``max_len`` (training whole
200-entry windows for replay made a step ~8x slower and let replay outweigh the new events 30 to 1 in the
loss). Rows are packed by length into a few parts that make one optimisation step (:func:`pack_rows`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from freshrec.model.data import Batch
from freshrec.sequence import Sequences

#: Sequence entries of context before each row's targets.
CONTEXT = 20
#: Target entries per replayed user: a random span of its sequence.
REPLAY_SPAN = 8
#: Length quantiles at which a micro-batch's rows are cut into parts (pack_rows).
PACK_QUANTILES = (0.5, 0.8, 0.95)


def micro_batch(
    sequences: Sequences,
    rows: Callable[[np.ndarray], np.ndarray],
    fresh: Mapping[str, int],
    replay: Sequence[str],
    max_len: int,
    rng: np.random.Generator,
    context: int = CONTEXT,
    span: int = REPLAY_SPAN,
) -> list[Batch] | None:
    """The rows of one micro-batch, packed (see the module docstring); ``None`` when nothing is trainable.

    ``fresh[user]``: how many of the user's newest entries are new (targets); ``replay``: users whose random
    span is replayed; ``rows`` maps catalogue indices to model rows (0: no row, never a target).

    Example
    -------
    >>> from freshrec.schema import EventRecord
    >>> from freshrec.sequence import EventTypes
    >>> seqs = Sequences(EventTypes(["view"]))
    >>> _ = seqs.fold([EventRecord(n, "u", str(n), "view", float(n)) for n in range(1, 6)], [1, 2, 3, 4, 5])
    >>> [part] = micro_batch(seqs, lambda idx: idx, {"u": 2}, [], max_len=10, rng=np.random.default_rng(0),
    ...                      context=1)
    >>> part.items.tolist(), part.targets.tolist()   # one entry of context, then the two new entries
    ([[2, 3, 4]], [[0, 4, 5]])
    """
    rows_x, rows_t, rows_y, rows_k = [], [], [], []
    for user, n_new in [*fresh.items(), *((u, None) for u in replay)]:
        seq = sequences.get(user)
        if seq is None:
            continue
        items, types = seq.item_array(), seq.type_array()
        end = len(items)
        if n_new is None:
            n_new = min(span, end - 1)
            if n_new < 1:
                continue
            # the span ends at a uniform position: every part of an old history gets replayed in time
            end = int(rng.integers(n_new + 1, end + 1))
        window = min(end, n_new + context + 1, max_len + 1)
        # only the window is mapped to rows: most of a 200-entry sequence is not read
        mapped, types = rows(items[end - window : end]), types[end - window : end]
        if len(mapped) < 2:
            continue
        x, t, y, kinds = mapped[:-1], types[:-1], mapped[1:].copy(), types[1:]
        y[: max(0, len(y) - n_new)] = 0  # only the new (or replayed) entries are targets
        y[x == 0] = 0
        rows_x.append(x)
        rows_t.append(t)
        rows_y.append(y)
        rows_k.append(np.where(y > 0, kinds, 0))
    if not rows_x or not any((y > 0).any() for y in rows_y):
        return None
    return pack_rows(rows_x, rows_t, rows_y, rows_k)


def pack_rows(
    rows_x: list[np.ndarray],
    rows_t: list[np.ndarray],
    rows_y: list[np.ndarray],
    rows_k: list[np.ndarray] | None = None,
    quantiles: Sequence[float] = PACK_QUANTILES,
) -> list[Batch]:
    """Rows of different lengths -> batches of similar lengths, each right-padded to its own longest row.

    A user with a burst of new events makes a long row; padding every row to it wasted about half of
    each micro-batch's compute on the generated shop. Rows are sorted by length and cut at these length
    quantiles (a handful of parts: each costs a forward/backward call). ``rows_k``: each target's event-type
    code (the batches' ``target_types``).

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
        out = [np.zeros((len(members), width), dtype=np.int64) for _ in range(4)]
        for r, m in enumerate(members):
            x, t, y = rows_x[m], rows_t[m], rows_y[m]
            out[0][r, : len(x)], out[1][r, : len(t)], out[2][r, : len(y)] = x, t, y
            if rows_k is not None:
                out[3][r, : len(y)] = rows_k[m]
        parts.append(Batch(*(torch.from_numpy(a) for a in out)))
    return parts

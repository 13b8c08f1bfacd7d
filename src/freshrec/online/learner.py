"""The model the online trainer fine-tunes, with its id map and its optimizer.

The item table's rows follow the version's own id map (``item_ids``: training order, then growth order),
not the catalogue's numbering; :attr:`Learner.row_map` translates catalogue indices to rows. Online
fine-tuning runs without dropout: the replays learned as much without it, and dropout costs a random
draw per activation on CPU.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from freshrec.catalog.base import Catalog
from freshrec.device import amp_dtype
from freshrec.model.data import Batch, pad_histories
from freshrec.model.gate import Contender
from freshrec.model.losses import FullSoftmaxCE
from freshrec.model.rowmap import RowMap
from freshrec.model.sasrec import SASRec
from freshrec.model.train import make_optimizer, train_step

#: A history in catalogue indices: (items [S], type codes [S]), newest last.
History = tuple[np.ndarray, np.ndarray]


class Learner:
    """A model being fine-tuned: its weights, its id map, a fresh AdamW, the training loss.

    Parameters
    ----------
    model, item_ids
        The weights and the id map they start from (row ``i + 1`` is ``item_ids[i]``).
    catalog
        Translates the id map to catalogue indices.
    lr, weight_decay
        AdamW's learning rate and weight decay.
    exclude_seen
        Fine-tune with the objective the version was trained with (``train.exclude_seen``).

    Example
    -------
    >>> import tempfile, pathlib
    >>> from freshrec.catalog.sqlite import SQLiteCatalog
    >>> from freshrec.model.sasrec import SASRecConfig
    >>> catalog = SQLiteCatalog(pathlib.Path(tempfile.mkdtemp()) / "catalog.db")
    >>> _ = catalog.internal_ids(["new", "a", "b"])            # the catalogue numbers "new" first
    >>> learner = Learner(SASRec(SASRecConfig(num_items=2, dim=8, heads=1, layers=1, max_len=4)),
    ...                   ["a", "b"], catalog, lr=1e-3, weight_decay=0.0)
    >>> learner.rows(np.array([1, 2, 3])).tolist()             # "new" has no row yet
    [0, 1, 2]
    >>> learner.append_rows([1], torch.zeros(1, 8))
    >>> learner.rows(np.array([1])).tolist(), learner.item_ids
    ([3], ['a', 'b', 'new'])
    >>> catalog.close()
    """

    def __init__(
        self,
        model: SASRec,
        item_ids: Sequence[str],
        catalog: Catalog,
        lr: float,
        weight_decay: float,
        exclude_seen: bool = False,
        precision: str = "auto",
    ) -> None:
        self.device = torch.device("cpu")
        self.amp = amp_dtype(self.device, precision)
        self.catalog = catalog
        self.lr, self.weight_decay = lr, weight_decay
        self.loss = FullSoftmaxCE(exclude_seen=exclude_seen)
        self.adopt(model, item_ids)

    def adopt(self, model: SASRec, item_ids: Sequence[str]) -> None:
        """Fine-tune ``model`` from here on: no dropout, train mode, a fresh optimizer."""
        self.model = model.to(self.device)
        self.model.set_dropout(0.0)
        self.model.train()
        self.item_ids = list(item_ids)
        self.row_map = RowMap.from_item_ids(self.catalog, self.item_ids)
        self.optimizer = make_optimizer(self.model, self.lr, self.weight_decay)

    @property
    def max_len(self) -> int:
        return self.model.config.max_len

    def rows(self, catalog_idx: np.ndarray) -> np.ndarray:
        """Model rows of catalogue indices (0 where the model has no row)."""
        return self.row_map.rows(catalog_idx)

    def contender(self) -> Contender:
        """The model and its catalogue -> row translation, as the gate scores it."""
        return self.model, self.row_map.rows

    def frozen(self) -> SASRec:
        """A copy of the weights in eval mode (what is published)."""
        return copy.deepcopy(self.model).eval()

    def step(self, batch: Batch | Sequence[Batch]) -> float:
        """One optimisation step (:func:`~freshrec.model.train.train_step`); returns the loss."""
        return train_step(self.model, self.optimizer, batch, self.loss, self.device, self.amp)

    def readable(self, history: History) -> History | None:
        """The newest ``max_len`` entries of a catalogue-index history as model rows, dropping entries the
        model has no row for; ``None`` when nothing is left."""
        items, types = history
        rows = self.rows(items[-self.max_len :])
        keep = rows > 0
        return (rows[keep], types[-self.max_len :][keep]) if keep.any() else None

    def encode(self, histories: Sequence[History]) -> torch.Tensor:
        """User vectors [B, D] of histories already in model rows (see :meth:`readable`)."""
        x, t, lengths = pad_histories([h[0] for h in histories], [h[1] for h in histories], self.max_len)
        self.model.eval()
        try:
            with torch.no_grad():
                return self.model.encode(x, lengths, t)
        finally:
            self.model.train()

    def append_rows(self, catalog_idx: Sequence[int], values: torch.Tensor) -> None:
        """Give these catalogue items new rows at the end of the table (optimizer state grows with it)."""
        grow(self.model, self.optimizer, values)
        self.item_ids.extend(self.catalog.external_id(int(i)) for i in catalog_idx)
        self.row_map = self.row_map.extended(catalog_idx)

    def rebuild_rows(self, rows: Sequence[int], values: torch.Tensor) -> None:
        """Overwrite existing rows (their optimizer moments restart too)."""
        reset_rows(self.model, self.optimizer, rows, values)


def grow(model: SASRec, optimizer: torch.optim.Optimizer | None, rows: torch.Tensor) -> None:
    """Append ``rows`` to the item table (and the conversion head, when the model has one) and keep the
    optimizer pointing at (and tracking) the grown tables."""
    old = [model.item_emb.weight, *([model.conversion.weight] if model.conversion is not None else [])]
    model.grow_items(rows)
    new = [model.item_emb.weight, *([model.conversion.weight] if model.conversion is not None else [])]
    if optimizer is None:
        return
    swap = {id(o): n for o, n in zip(old, new, strict=True)}
    for group in optimizer.param_groups:
        group["params"] = [swap.get(id(p), p) for p in group["params"]]
    for before, after in zip(old, new, strict=True):
        state = optimizer.state.pop(before, None)
        if not state:
            continue
        extra = after.shape[0] - before.shape[0]
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                pad = torch.zeros(extra, *state[key].shape[1:], dtype=state[key].dtype, device=state[key].device)
                state[key] = torch.cat([state[key], pad])
        optimizer.state[after] = state


def reset_rows(
    model: SASRec, optimizer: torch.optim.Optimizer | None, rows: Sequence[int], values: torch.Tensor
) -> None:
    """Overwrite item-table ``rows`` with ``values`` and forget the optimizer's moments for them, so they
    train on as freshly grown rows do (other rows and their optimizer state untouched)."""
    index = torch.as_tensor(rows, dtype=torch.long)
    weight = model.item_emb.weight
    with torch.no_grad():
        weight[index] = values.to(weight)
    state = optimizer.state.get(weight) if optimizer is not None else None
    for key in ("exp_avg", "exp_avg_sq"):
        if state and key in state:
            state[key][index] = 0

"""Training: :func:`train_step` (the one step offline and online training share) and :class:`Trainer.fit`.

Speed on CPU comes from these choices (docs/benchmarks.md, training speed): length-bucketed batches
trimmed to their longest sequence (little padding), logits only at positions that have a target (the
[M, N] matrix never includes padding), the fused attention kernel (no dropout on attention weights, see
:class:`~freshrec.model.sasrec.SASRecConfig`), bf16 autocast where the CPU runs it natively, and
``torch.compile`` of the transformer and of the loss's per-chunk softmax (its loop over chunks stays eager)
for datasets big enough to repay the compile time, on CUDA or under bf16 (on an fp32 CPU the compiled step
measured slower than eager).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from freshrec.config import TrainSettings
from freshrec.device import amp_dtype, autocast, resolve_device
from freshrec.model.data import Batch, EvalSet, TrainingBatches
from freshrec.model.evaluate import batch_tokens, evaluate_scorer, model_scorer
from freshrec.model.losses import FullSoftmaxCE, NextItemLoss
from freshrec.model.sasrec import SASRec

log = logging.getLogger(__name__)

#: With ``train.compile='auto'``, compile only when an epoch has this many positions: below it the compile
#: time (tens of seconds on a CPU) is not repaid.
COMPILE_MIN_POSITIONS = 200_000
#: Users scored per call while validating.
EVAL_BATCH_USERS = 512


#: (model, loss, items [B, L], types [B, L], targets [M], flat positions [M], conversion rows [C] or None)
#: -> scalar loss
ForwardLoss = Callable[
    [SASRec, NextItemLoss, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None],
    torch.Tensor,
]


def forward_loss(
    model: SASRec,
    loss: NextItemLoss,
    items: torch.Tensor,
    types: torch.Tensor,
    targets: torch.Tensor,
    positions: torch.Tensor,
    conversions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Loss at the given flat positions only. ``positions``/``targets``: [M]; ``conversions``: [C] indices
    into them of the targets that are conversions, which the conversion head also learns (all computed
    outside so a compiled graph has no data-dependent shapes)."""
    picked = model(items, types, positions=positions)  # [M, D]
    value = loss(picked, model.item_emb.weight, targets, (items, positions))
    if conversions is not None and model.conversion is not None:
        # The conversion head's logits are the next-item logits plus a per-item score: the dot product
        # with a column of ones appended to the (detached) hidden states and the head appended to the
        # (detached) table, so the chunked softmax serves it and only the head learns from it.
        hidden = picked.detach().index_select(0, conversions)
        hidden = torch.cat([hidden, torch.ones_like(hidden[:, :1])], dim=1)
        table = torch.cat([model.item_emb.weight.detach(), model.conversion.weight], dim=1)
        seen = (items, positions.index_select(0, conversions))
        value = value + loss(hidden, table, targets.index_select(0, conversions), seen)
    return value


def conversion_rows(model: SASRec, target_types: torch.Tensor | None) -> torch.Tensor | None:
    """[C] indices of the targets (``target_types``: [M], their event-type codes) the conversion head learns
    from; ``None`` when there are none or the model has no conversion head.

    >>> from freshrec.model.sasrec import SASRecConfig
    >>> model = SASRec(SASRecConfig(num_items=5, dim=4, heads=1, layers=1, max_len=4, conversion_types=(4,)))
    >>> conversion_rows(model, torch.tensor([1, 4, 2, 4])).tolist()
    [1, 3]
    """
    codes = model.config.conversion_types
    if model.conversion is None or target_types is None or not codes:
        return None
    found = torch.isin(target_types, torch.tensor(codes, device=target_types.device)).nonzero().squeeze(1)
    return found if len(found) else None


def train_step(
    model: SASRec,
    optimizer: torch.optim.Optimizer,
    batch: Batch | Sequence[Batch],
    loss: NextItemLoss,
    device: torch.device,
    amp: torch.dtype | None = None,
    step_fn: ForwardLoss = forward_loss,
    max_grad_norm: float | None = 1.0,
) -> float:
    """One optimisation step on one batch; returns the loss. Offline and online training both call this.

    A sequence of batches is one step over their union: gradients are accumulated, each part weighted
    by its share of the targets, so the result equals one batch holding every row, without padding the
    short rows out to the longest one (the online trainer's rows range from ~20 to ~200 entries).
    """
    model.train()
    parts = [batch] if isinstance(batch, Batch) else list(batch)
    counts = [int(torch.count_nonzero(p.targets)) for p in parts]
    total = sum(counts)
    optimizer.zero_grad(set_to_none=True)
    value_sum = 0.0
    for part, count in zip(parts, counts, strict=True):
        if not count:
            continue
        part = part.to(device)
        flat_targets = part.targets.reshape(-1)
        positions = flat_targets.nonzero().squeeze(1)
        kinds = None if part.target_types is None else part.target_types.reshape(-1).index_select(0, positions)
        conversions = conversion_rows(model, kinds)
        with autocast(device, amp):
            value = step_fn(
                model, loss, part.items, part.types, flat_targets.index_select(0, positions), positions, conversions
            )
        share = count / total
        (value * share).backward()
        value_sum += float(value.detach()) * share
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return value_sum


def make_optimizer(model: SASRec, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW with decay on matrices only (not on norms, biases or position embeddings)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "pos_emb" not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


@dataclass
class EpochLog:
    epoch: int
    loss: float
    seconds: float
    valid: dict[str, float]


@dataclass
class FitResult:
    """What a training run did; stored in the published version's metadata."""

    best_epoch: int
    epochs: int
    stopped: str
    seconds: float
    train_seconds_per_epoch: float
    positions_per_epoch: int
    valid: dict[str, float]
    history: list[EpochLog] = field(default_factory=list)
    device: str = "cpu"
    precision: str = "fp32"
    compiled: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class Trainer:
    """Fits a :class:`SASRec` with early stopping on validation NDCG@10.

    Example
    -------
    >>> import numpy as np
    >>> from freshrec.config import TrainSettings
    >>> from freshrec.model.data import EvalSet
    >>> from freshrec.model.sasrec import SASRec, SASRecConfig
    >>> seqs = [np.array([1, 2, 3, 4, 5, 6]) for _ in range(20)]
    >>> types = [np.ones(6, dtype=np.int64) for _ in range(20)]
    >>> valid = EvalSet(["u"], [np.array([1, 2, 3])], [np.ones(3, dtype=np.int64)], np.array([4]))
    >>> model = SASRec(SASRecConfig(num_items=6, dim=16, heads=1, layers=1, max_len=8))
    >>> result = Trainer(model, TrainSettings(epochs=30, patience=30, device="cpu", compile="off"),
    ...                  progress=False).fit(seqs, types, valid)
    >>> result.valid["mrr@10"]  # the held-out 4 ranks first
    1.0
    """

    def __init__(self, model: SASRec, settings: TrainSettings, progress: bool = True) -> None:
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.amp = amp_dtype(self.device, settings.precision)
        self.model = model.to(self.device)
        self.loss = FullSoftmaxCE(exclude_seen=settings.exclude_seen)
        self.optimizer = make_optimizer(model, settings.lr, settings.weight_decay)
        self.progress = progress
        self.compiled = False
        self._step_fn: ForwardLoss = forward_loss

    def _maybe_compile(self, positions: int) -> None:
        mode = self.settings.compile
        if mode == "off":
            return
        # On a CPU without native bf16 the compiled fp32 step is slower than eager (docs/benchmarks.md,
        # training speed): 'auto' compiles on CUDA and under bf16 only.
        if mode == "auto" and (
            positions < COMPILE_MIN_POSITIONS or not (self.device.type == "cuda" or self.amp == torch.bfloat16)
        ):
            return
        try:
            self._step_fn = torch.compile(forward_loss, dynamic=True)  # type: ignore[assignment]
            self.loss.fused = True
            self.compiled = True
        except Exception as exc:  # a missing compiler toolchain must not stop training
            log.warning("torch.compile unavailable (%s); training eagerly", exc)

    def evaluate(self, data: EvalSet) -> dict[str, float]:
        scorer = model_scorer(self.model, self.device, self.amp)
        return evaluate_scorer(
            scorer,
            data,
            ks=(10, 20),
            batch_size=EVAL_BATCH_USERS,
            max_tokens=batch_tokens(self.device),
            max_len=self.model.config.max_len,
        )

    def prepare(self, train_items: list[np.ndarray], train_types: list[np.ndarray]) -> TrainingBatches:
        """Batches for these sequences; also decides whether to compile (it depends on the data size)."""
        batches = TrainingBatches(
            train_items,
            train_types,
            self.model.config.max_len,
            self.settings.batch_size,
            self.settings.window_overlap,
        )
        if not len(batches):
            raise ValueError("no training sequences with at least two entries")
        self._maybe_compile(batches.positions)
        return batches

    def run_epoch(self, batches: TrainingBatches, rng: np.random.Generator, desc: str = "epoch") -> float:
        """One pass over the batches; returns the mean loss."""
        bar = tqdm(batches.epoch(rng), total=len(batches), desc=desc, leave=False, disable=not self.progress)
        return float(np.mean([self.step(batch) for batch in bar]))

    def step(self, batch: Batch) -> float:
        """One optimisation step (see :func:`train_step`)."""
        return train_step(self.model, self.optimizer, batch, self.loss, self.device, self.amp, self._step_fn)

    def fit(self, train_items: list[np.ndarray], train_types: list[np.ndarray], valid: EvalSet) -> FitResult:
        """Train with early stopping on validation NDCG@10, scored on a fixed sample of at most
        ``train.valid_users`` of ``valid``'s users; the best epoch's weights are kept."""
        s = self.settings
        torch.manual_seed(s.seed)
        rng = np.random.default_rng(s.seed)
        # its own generator: the sample does not shift the batch order of a run with fewer users
        valid = valid.sample(s.valid_users, np.random.default_rng([s.seed, 1]))
        batches = self.prepare(train_items, train_types)
        best, best_epoch, best_state, history = -math.inf, 0, None, []
        started, train_seconds, stopped, since_best = time.perf_counter(), 0.0, "max_epochs", 0
        bar = tqdm(range(1, s.epochs + 1), desc="training", unit="epoch", disable=not self.progress)
        for epoch in bar:
            t0 = time.perf_counter()
            loss = self.run_epoch(batches, rng, desc=f"epoch {epoch}")
            epoch_seconds = time.perf_counter() - t0
            train_seconds += epoch_seconds
            metrics = self.evaluate(valid) if len(valid) else {"ndcg@10": -loss}
            history.append(EpochLog(epoch, loss, epoch_seconds, metrics))
            bar.set_postfix(loss=f"{loss:.3f}", val_ndcg10=f"{metrics['ndcg@10']:.4f}")
            if metrics["ndcg@10"] > best:
                best, best_epoch, since_best = metrics["ndcg@10"], epoch, 0
                best_state = copy.deepcopy(self.model.state_dict())
            else:
                since_best += 1
            if since_best >= s.patience:
                stopped = "early_stopping"
                break
            if s.max_seconds is not None and time.perf_counter() - started > s.max_seconds:
                stopped = "time_limit"
                break
        bar.close()
        if best_state is not None:
            self.model.load_state_dict(best_state)
        return FitResult(
            best_epoch=best_epoch,
            epochs=len(history),
            stopped=stopped,
            seconds=time.perf_counter() - started,
            train_seconds_per_epoch=train_seconds / max(1, len(history)),
            positions_per_epoch=batches.positions,
            valid=history[best_epoch - 1].valid if best_epoch else {},
            history=history,
            device=str(self.device),
            precision="fp32" if self.amp is None else str(self.amp).removeprefix("torch."),
            compiled=self.compiled,
        )

"""Training losses for next-item prediction.

Full-softmax cross-entropy over the whole catalogue: Klenitskiy & Vasilev (RecSys 2023) show it adds
0.05-0.07 NDCG@10 over SASRec's original one-negative BCE. Only positions with a target are scored (the
caller gathers them), so padding never reaches the [M, N] logits.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

#: ``(items [B, L], positions [M])``: a batch's inputs and each target's flat position in them.
Seen = tuple[torch.Tensor, torch.Tensor] | None


class NextItemLoss(nn.Module):
    """Base: ``forward(hidden [M, D], item_table [N + 1, D], targets [M], seen) -> scalar``; row 0 is padding.

    ``seen`` (optional, :data:`Seen`) lets a loss tell which items each target's sequence already holds.
    """

    def forward(
        self, hidden: torch.Tensor, item_table: torch.Tensor, targets: torch.Tensor, seen: Seen = None
    ) -> torch.Tensor:
        raise NotImplementedError


class FullSoftmaxCE(NextItemLoss):
    """Cross-entropy against every item; the padding row is never a candidate.

    With ``exclude_seen=True`` (and ``seen`` given) each target is scored only against the items its
    sequence does not already hold up to that position (the target itself always stays): the ranking
    serving and the filtered evaluation protocol make, where seen items are removed before ranking. The
    model then spends no capacity pushing already-consumed items down.

    Example
    -------
    >>> import torch
    >>> table = torch.eye(4)            # padding + 3 items, D = 4
    >>> hidden = 10 * table[[2]]        # points at item 2
    >>> round(FullSoftmaxCE()(hidden, table, torch.tensor([2])).item(), 4)
    0.0001
    """

    def __init__(self, chunk: int | None = None, exclude_seen: bool = False, fused: bool = False) -> None:
        super().__init__()
        self.chunk = chunk  # rows of logits at a time; None: as many as CHUNK_LOGITS allows
        self.exclude_seen = exclude_seen
        # each chunk's softmax and gradient as one compiled kernel (see _softmax_grad); the trainer turns
        # this on when it compiles the step, since it too needs a compiler toolchain and a compile
        self.fused = fused

    def forward(
        self, hidden: torch.Tensor, item_table: torch.Tensor, targets: torch.Tensor, seen: Seen = None
    ) -> torch.Tensor:
        chunk = self.chunk or max(1, CHUNK_LOGITS // max(1, item_table.shape[0] - 1))
        items, positions = seen if self.exclude_seen and seen is not None else (None, None)
        return _chunked_softmax_ce(hidden, item_table[1:], targets - 1, chunk, items, positions, self.fused)


#: Logits one chunk of :class:`FullSoftmaxCE` holds (~8 MB in fp32). Each chunk makes several elementwise
#: passes over its logits; chunks this size keep those passes in cache (a step's loss took ~17-20% less
#: time than with 1,024-row chunks on 2 cores at 3.4K-9.7K items).
CHUNK_LOGITS = 1 << 21


class _ChunkedSoftmaxCE(torch.autograd.Function):
    """Mean softmax cross-entropy of ``hidden @ table.T`` against ``targets``, ``chunk`` rows at a time.

    The [M, N] logits are never held whole: each chunk's logits become its gradient (softmax minus the
    one-hot target) at once, and both input gradients are accumulated in the forward pass. Same value and
    gradients as ``F.cross_entropy(hidden @ table.T, targets)``, but autograd kept the logits, their
    softmax and their gradient (three [M, N] arrays, ~70 MB each for an online micro-batch at 3.4K items):
    memory traffic, not arithmetic, was most of the loss's time on CPU.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        hidden: torch.Tensor,
        table: torch.Tensor,
        targets: torch.Tensor,
        chunk: int,
        items: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        fused: bool = False,
    ) -> torch.Tensor:
        device = hidden.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32
        need = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        with torch.autocast(device, enabled=False):
            h_all, tab = hidden.to(dtype), table.to(dtype)
            grad_h = torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device) if need else None
            grad_t = torch.zeros(table.shape, dtype=torch.float32, device=table.device) if need else None
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            kernel = _compiled_softmax_grad() if fused and need and items is None else None
            for start in range(0, hidden.shape[0], chunk):
                h, t = h_all[start : start + chunk], targets[start : start + chunk]
                if kernel is not None:
                    value, probs = kernel(h @ tab.T, t, dtype)
                else:
                    seen = None if items is None else (items, positions[start : start + chunk])
                    value, probs = _softmax_grad_in_place(h @ tab.T, t, dtype, need, seen)
                total += value
                if probs is not None:
                    grad_h[start : start + chunk] = (probs @ tab).float()
                    grad_t += (probs.T @ h).float()
        count = max(hidden.shape[0], 1)
        if need:
            ctx.save_for_backward(grad_h, grad_t)
        ctx.count, ctx.dtypes = count, (hidden.dtype, table.dtype)
        return total / count

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        grad_h, grad_t = ctx.saved_tensors
        scale = grad_out / ctx.count
        return (grad_h * scale).to(ctx.dtypes[0]), (grad_t * scale).to(ctx.dtypes[1]), None, None, None, None, None


# Kept out of torch.compile: the Python loop over chunks would make a compiled graph guard on the number of
# targets and recompile for every batch shape (~50 s each on one core, until dynamo gives up after eight);
# eager, it is already a few large matrix products per chunk.
_chunked_softmax_ce = torch.compiler.disable(_ChunkedSoftmaxCE.apply)


def _softmax_grad_in_place(
    logits: torch.Tensor, targets: torch.Tensor, dtype: torch.dtype, need: bool, seen: Seen = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One chunk's summed loss and, if ``need``, its gradient (softmax minus one-hot, in ``dtype``), eager.

    Works in place on one float copy of the logits (the least memory uncompiled); ``seen`` = (items,
    positions) first removes each row's already-seen items (:func:`_mask_seen`).
    """
    logits = logits.float()
    picked = logits.gather(1, targets.unsqueeze(1))
    if seen is not None:
        _mask_seen(logits, picked, targets, *seen)
    peak = logits.amax(dim=1, keepdim=True)
    # one exp pass serves the loss and the softmax (logsumexp and then softmax took two)
    weights = logits.sub_(peak).exp_()  # in place: the logits are not needed again
    norm = weights.sum(dim=1, keepdim=True)
    value = (norm.log() + peak - picked).sum()
    if not need:
        return value, None
    probs = weights.div_(norm)
    probs[torch.arange(len(targets), device=probs.device), targets] -= 1.0
    return value, probs.to(dtype)


def _softmax_grad(logits: torch.Tensor, targets: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_softmax_grad_in_place` without a mask, written out of place so that compiled it becomes a
    few passes over the chunk instead of eight (a float copy, max, subtract, exp, sum, divide, the one-hot
    subtraction, the cast): ~2x faster per chunk at 3.4K items.
    """
    x = logits.float()
    picked = x.gather(1, targets.unsqueeze(1))
    peak = x.amax(dim=1, keepdim=True)
    weights = (x - peak).exp()
    norm = weights.sum(dim=1, keepdim=True)
    onehot = torch.arange(x.shape[1], device=x.device).unsqueeze(0) == targets.unsqueeze(1)
    return (norm.log() + peak - picked).sum(), (weights / norm - onehot.to(weights.dtype)).to(dtype)


@functools.cache
def _compiled_softmax_grad():
    # dynamic: one kernel serves every chunk height (the last chunk of each batch is shorter)
    return torch.compile(_softmax_grad, dynamic=True)


def _mask_seen(
    logits: torch.Tensor, picked: torch.Tensor, targets: torch.Tensor, items: torch.Tensor, positions: torch.Tensor
) -> None:
    """Set to -inf, in place, each row's logits of the items its sequence holds up to its position.

    ``logits``: [C, N] (column = item index - 1); ``items``: [B, L] inputs; ``positions``: [C] flat
    indices into B x L. The target's own logit is put back (a repeat consumption stays learnable).
    """
    width = items.shape[1]
    rows, cols = positions // width, positions % width
    history = items.index_select(0, rows)  # [C, L]
    later = torch.arange(width, device=items.device).unsqueeze(0) > cols.unsqueeze(1)
    # padding and entries after the position point at the target's column, which is restored below
    index = torch.where(later | (history == 0), targets.unsqueeze(1), history - 1)
    logits.scatter_(1, index, float("-inf"))
    logits.scatter_(1, targets.unsqueeze(1), picked)

"""Growing the item table in place when new items arrive: no retrain, existing rows untouched.

New rows are initialised, in order of preference, from the item's content (when a content mapping is
available), from the items it co-occurs with, or from small random values at the scale of the existing
table. Co-occurrence here means the model's own reading of the sequences that led to the item: the mean
user vector of those contexts, scaled to a typical row norm. Since a score is a dot product with the user
vector, the new item then ranks high exactly where it was chosen, before any gradient step. Every new
row is then calibrated (:func:`calibrate`) so that, averaged over users, it scores like the median item:
without that, new items took most of everyone's top-10 (Amazon replay, docs/benchmarks.md §6). The
optimizer's moment estimates grow with the table (zeros for the new rows), so training continues without
resetting what it learned. An item that already has a row which never trained (it was in the catalogue,
without events, when the version was trained) gets that row rebuilt the same way on its first events
(:func:`reset_rows`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from freshrec.model.sasrec import SASRec

#: content initialiser: catalogue indices of new items -> [M, D] rows, with NaN rows where it has no content
ContentRows = Callable[[Sequence[int]], torch.Tensor | None]


def initial_rows(
    model: SASRec,
    new_catalog_idx: Sequence[int],
    contexts: dict[int, torch.Tensor],
    content: ContentRows | None = None,
    generator: torch.Generator | None = None,
    users: torch.Tensor | None = None,
    rates: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list[str]]:
    """Rows for new items and how each was initialised ("content", "co-occurrence", "random").

    ``contexts[catalog_idx]``: [C, D] user vectors of the sequences just before the item was chosen.
    ``users``: [U, D] a sample of user vectors; with it each new row is moved along the mean user direction
    until its mean score over the sample is the median existing item's (see :func:`calibrate`), or, given
    ``rates`` [M] (each new item's observed share of recent choices), until its mean softmax probability
    over the sample equals that rate (see :func:`calibrate_to_rates`).
    """
    table = model.item_emb.weight.detach()
    known = table[1:]
    scale = float(known.std()) if known.shape[0] > 1 else model.config.dim**-0.5
    norm = float(known.norm(dim=1).mean()) if known.shape[0] else 1.0
    rows = torch.randn(len(new_catalog_idx), table.shape[1], generator=generator) * scale * 0.1
    how = ["random"] * len(new_catalog_idx)
    from_content = content(new_catalog_idx) if content is not None else None
    for j, idx in enumerate(new_catalog_idx):
        if from_content is not None and not torch.isnan(from_content[j]).any():
            rows[j] = from_content[j]
            how[j] = "content"
        elif idx in contexts and len(contexts[idx]):
            mean = contexts[idx].float().mean(0)
            rows[j] = mean * (norm / max(float(mean.norm()), 1e-8))
            how[j] = "co-occurrence"
    if users is not None and len(users) and known.shape[0]:
        if rates is not None:
            rows = calibrate_to_rates(rows, known.float(), users.float(), rates.float())
        else:
            rows = calibrate(rows, known.float(), users.float())
    return rows, how


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


def calibrate_to_rates(
    rows: torch.Tensor, known: torch.Tensor, users: torch.Tensor, rates: torch.Tensor, iterations: int = 50
) -> torch.Tensor:
    """Shift each of ``rows`` along the mean user vector until its softmax probability, averaged over
    ``users`` and computed against the ``known`` items and itself, equals its entry of ``rates``.

    Why: a trained softmax model's items satisfy this by themselves (at the optimum of the cross-entropy the
    gradient of an item's bias, predicted minus observed count, is zero), so a new row placed this way
    scores at the level its first choices say, where :func:`calibrate`'s median item is a fixed guess: too
    low for a launch everybody looks at, too high for a niche item. The shift is found by bisection, per
    row at once, and bounded so that the row's mean score stays between the least and the most likely
    known item's (a rate no shift reaches, e.g. because a few users point away from the mean direction,
    ends at a bound instead of running off). The part of the row orthogonal to the mean user vector is kept.

    >>> import torch
    >>> users = torch.tensor([[1.0, 0.5], [1.0, -0.5]])
    >>> known = torch.tensor([[-3.0, 0.0], [0.0, 0.0], [3.0, 0.0]])
    >>> row = calibrate_to_rates(torch.zeros(1, 2), known, users, torch.tensor([0.25]))
    >>> row  # score 1.95 for both users: e^1.95 / (e^-3 + e^0 + e^3 + e^1.95) = 0.25
    tensor([[1.9523, 0.0000]])
    """
    direction = users.mean(0)
    along = users @ direction  # [U]
    scale = float(along.mean())  # = |direction|^2
    if scale <= 1e-12 or not len(known):
        return rows
    known_scores = users @ known.T  # [U, N]
    row_scores = users @ rows.T  # [U, M]
    # log-odds of each row against the known items, before the shift
    base = row_scores - torch.logsumexp(known_scores, dim=1, keepdim=True)
    target = rates.clamp(1e-9, 1 - 1e-9)
    # bracket: the shifts that put the row's mean score at the least / the most likely known item's
    known_mean = known_scores.mean(0)
    row_mean = row_scores.mean(0)
    lo = (known_mean.min() - row_mean) / scale
    hi = (known_mean.max() - row_mean) / scale
    for _ in range(iterations):
        mid = (lo + hi) / 2
        # mean_u sigmoid(base + shift * along): increasing in the shift for users along the mean direction
        too_high = torch.sigmoid(base + mid.unsqueeze(0) * along.unsqueeze(1)).mean(0) > target
        hi = torch.where(too_high, mid, hi)
        lo = torch.where(too_high, lo, mid)
    return rows + ((lo + hi) / 2).unsqueeze(1) * direction


def grow(model: SASRec, optimizer: torch.optim.Optimizer | None, rows: torch.Tensor) -> None:
    """Append ``rows`` to the item table and keep the optimizer pointing at (and tracking) it."""
    old = model.item_emb.weight
    model.grow_items(rows)
    new = model.item_emb.weight
    if optimizer is None:
        return
    for group in optimizer.param_groups:
        group["params"] = [new if p is old else p for p in group["params"]]
    state = optimizer.state.pop(old, None)
    if state:
        extra = rows.shape[0]
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                pad = torch.zeros(extra, *state[key].shape[1:], dtype=state[key].dtype, device=state[key].device)
                state[key] = torch.cat([state[key], pad])
        optimizer.state[new] = state


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

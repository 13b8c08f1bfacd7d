"""The full-softmax loss against PyTorch's plain cross-entropy: chunked, fused (compiled), seen items left out."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from freshrec.model import losses
from freshrec.model.losses import FullSoftmaxCE


# the fused kernel is compiled by inductor once per process (~20 s on 2 cores): the second CI stage
@pytest.mark.parametrize("fused", [False, pytest.param(True, marks=pytest.mark.slow)])
@pytest.mark.parametrize("chunk", [1, 7, 1024, None])
def test_full_softmax_in_chunks_equals_the_plain_cross_entropy(chunk: int | None, fused: bool, monkeypatch) -> None:
    # None: rows per chunk from the logits budget, here 100 // 40 items = 2 rows
    monkeypatch.setattr(losses, "CHUNK_LOGITS", 100)
    torch.manual_seed(0)
    table = torch.randn(41, 8, requires_grad=True)
    hidden = torch.randn(23, 8, requires_grad=True)
    targets = torch.randint(1, 41, (23,))
    value = FullSoftmaxCE(chunk, fused=fused)(hidden, table, targets)
    grads = torch.autograd.grad(value * 3.0, [hidden, table])
    plain = F.cross_entropy(hidden @ table[1:].T, targets - 1)
    plain_grads = torch.autograd.grad(plain * 3.0, [hidden, table])
    assert torch.allclose(value, plain, atol=1e-6)
    for got, want in zip(grads, plain_grads, strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    assert float(grads[1][0].abs().sum()) == 0.0  # the padding row is never a candidate
    with torch.no_grad():
        assert torch.allclose(FullSoftmaxCE(chunk)(hidden, table, targets), plain, atol=1e-6)


@pytest.mark.slow
def test_fused_chunk_kernel_compiles_once_for_every_chunk_height() -> None:
    """The last chunk of each batch is shorter than the others; a kernel recompiled per height would
    spend the training run compiling."""
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    table = torch.randn(51, 8, requires_grad=True)
    graphs = []
    for rows in (9, 14, 23, 30):  # chunk 5: last chunks of 4, 4, 3 and 5 rows
        hidden = torch.randn(rows, 8, requires_grad=True)
        FullSoftmaxCE(chunk=5, fused=True)(hidden, table, torch.randint(1, 51, (rows,))).backward()
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[-1] == graphs[0]


@pytest.mark.parametrize("chunk", [1, 3, None])
def test_full_softmax_can_leave_each_sequences_seen_items_out(chunk: int | None) -> None:
    torch.manual_seed(0)
    width = 5
    items = torch.tensor([[1, 2, 3, 4, 0], [5, 5, 6, 0, 0], [7, 8, 9, 10, 11]])  # inputs, 0 = padding
    grid = torch.tensor([[2, 3, 4, 9, 0], [5, 6, 1, 0, 0], [8, 9, 10, 11, 3]])  # targets; row 2: repeats 5
    flat = grid.reshape(-1)
    positions = flat.nonzero().squeeze(1)
    targets = flat[positions]
    hidden = torch.randn(len(targets), 4, requires_grad=True)
    table = torch.randn(13, 4, requires_grad=True)
    value = FullSoftmaxCE(chunk, exclude_seen=True)(hidden, table, targets, (items, positions))
    # reference: each target's own prefix (up to its position, padding aside) masked, the target kept
    masked = torch.zeros(len(targets), 12, dtype=torch.bool)
    for m, p in enumerate(positions.tolist()):
        row, col = divmod(p, width)
        for item in items[row, : col + 1].tolist():
            if item and item != int(targets[m]):
                masked[m, item - 1] = True
    plain = F.cross_entropy((hidden @ table[1:].T).masked_fill(masked, float("-inf")), targets - 1)
    assert torch.allclose(value, plain, atol=1e-6)
    grads = torch.autograd.grad(value, [hidden, table])
    for got, want in zip(grads, torch.autograd.grad(plain, [hidden, table]), strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    # the repeated target (item 5 at row 1's first position) is still learnt; without the flag nothing is masked
    assert float(grads[1][5].abs().sum()) > 0
    unmasked = FullSoftmaxCE(chunk)(hidden, table, targets, (items, positions))
    assert torch.allclose(unmasked, F.cross_entropy(hidden @ table[1:].T, targets - 1), atol=1e-6)


def test_full_softmax_under_bf16_autocast_keeps_fp32_gradients() -> None:
    torch.manual_seed(0)
    table = torch.randn(51, 8, requires_grad=True)
    hidden = torch.randn(30, 8, requires_grad=True)
    targets = torch.randint(1, 51, (30,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = FullSoftmaxCE(7)(hidden @ torch.eye(8), table, targets)
    value.backward()
    assert float(value.detach()) == pytest.approx(
        float(F.cross_entropy(hidden @ table[1:].T, targets - 1).detach()), rel=0.01
    )
    assert table.grad is not None and table.grad.dtype == torch.float32
    assert hidden.grad is not None and hidden.grad.dtype == torch.float32

"""Next-item losses: the sampled softmax against the full one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from freshrec.model import losses
from freshrec.model.losses import FullSoftmaxCE, SampledSoftmaxCE


@pytest.mark.parametrize("fused", [False, True])
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


def test_sampled_softmax_with_every_item_is_the_full_softmax() -> None:
    torch.manual_seed(0)
    table, hidden, targets = torch.randn(31, 8), torch.randn(20, 8), torch.randint(1, 31, (20,))
    full = FullSoftmaxCE()(hidden, table, targets)
    assert torch.equal(SampledSoftmaxCE(30)(hidden, table, targets), full)
    assert torch.equal(SampledSoftmaxCE(500)(hidden, table, targets), full)


def test_sampled_softmax_estimates_the_full_loss_and_its_gradient() -> None:
    torch.manual_seed(0)
    table = torch.randn(2001, 16) * 0.5
    hidden = torch.randn(256, 16, requires_grad=True)
    targets = torch.randint(1, 2001, (256,))
    full = FullSoftmaxCE()(hidden, table, targets)
    (full_grad,) = torch.autograd.grad(full, hidden)
    loss = SampledSoftmaxCE(256, generator=torch.Generator().manual_seed(1))
    values, grads = [], []
    for _ in range(50):
        value = loss(hidden, table, targets)
        values.append(float(value.detach()))
        grads.append(torch.autograd.grad(value, hidden)[0])
    assert sum(values) / len(values) == pytest.approx(float(full.detach()), rel=0.02)
    mean_grad = torch.stack(grads).mean(0)
    cosine = torch.nn.functional.cosine_similarity(mean_grad.flatten(), full_grad.flatten(), dim=0)
    assert cosine > 0.98


def test_a_negative_that_is_the_target_is_masked() -> None:
    # Four items, the hidden state points hard at item 1: the full softmax loss is ~0. Three draws from
    # four items hit the target most of the time; unmasked, each hit would add (4/3) e^50 to the partition.
    table = torch.zeros(5, 4)
    table[1, 0] = 1.0
    hidden = torch.tensor([[50.0, 0.0, 0.0, 0.0]])
    loss = SampledSoftmaxCE(3, generator=torch.Generator().manual_seed(0))
    for _ in range(20):
        assert float(loss(hidden, table, torch.tensor([1]))) < 1e-6


def test_negatives_must_be_positive() -> None:
    with pytest.raises(ValueError, match="negatives"):
        SampledSoftmaxCE(0)


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

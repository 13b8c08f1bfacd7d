import pytest
import torch

from freshrec.model.sasrec import Dropout, SASRec, SASRecConfig


def make(num_items: int = 30, **kw) -> SASRec:
    torch.manual_seed(0)
    return SASRec(SASRecConfig(num_items=num_items, dim=16, heads=2, layers=2, max_len=10, dropout=0.0, **kw)).eval()


def test_causal_no_position_sees_the_future() -> None:
    model = make()
    a = torch.tensor([[1, 2, 3, 4, 5]])
    b = torch.tensor([[1, 2, 3, 9, 8]])
    ha, hb = model(a), model(b)
    assert torch.allclose(ha[:, :3], hb[:, :3], atol=1e-6)
    assert not torch.allclose(ha[:, 3], hb[:, 3])


def test_right_padding_does_not_change_real_positions() -> None:
    model = make()
    short = model.encode(torch.tensor([[4, 7, 2]]), torch.tensor([3]))
    padded = model.encode(torch.tensor([[4, 7, 2, 0, 0, 0]]), torch.tensor([3]))
    batch = model.encode(torch.tensor([[4, 7, 2, 0], [1, 2, 3, 4]]), torch.tensor([3, 4]))
    assert torch.allclose(short, padded, atol=1e-6)
    assert torch.allclose(short[0], batch[0], atol=1e-5)


def test_event_types_change_the_encoding() -> None:
    model = make(num_types=3)
    items = torch.tensor([[4, 7, 2]])
    views = model.encode(items, torch.tensor([3]), torch.tensor([[1, 1, 1]]))
    bought = model.encode(items, torch.tensor([3]), torch.tensor([[1, 1, 3]]))
    assert not torch.allclose(views, bought)


def test_grow_items_keeps_existing_rows() -> None:
    model = make(num_items=5)
    before = model.item_emb.weight.detach().clone()
    new = torch.randn(3, 16)
    model.grow_items(new)
    assert model.num_items == 8 and model.config.num_items == 8
    assert torch.equal(model.item_emb.weight[:6], before)
    assert torch.equal(model.item_emb.weight[6:], new)
    assert model.item_vectors().shape == (8, 16)


def test_padding_row_is_zero_and_too_long_input_fails() -> None:
    model = make()
    assert torch.count_nonzero(model.item_emb.weight[0]) == 0
    try:
        model(torch.ones(1, 11, dtype=torch.long))
    except ValueError as exc:
        assert "max_len" in str(exc)
    else:
        raise AssertionError("expected ValueError")


def test_dropout_masks_at_the_rounded_rate_keeps_the_mean_and_is_seeded() -> None:
    drop = Dropout(0.3)
    x = torch.ones(200_000, requires_grad=True)
    assert torch.equal(drop.eval()(x), x)  # identity in eval mode
    drop.train()
    torch.manual_seed(1)
    y = drop(x)
    rate = 77 / 256  # 0.3 rounded to 1/256
    assert abs(float((y == 0).float().mean()) - rate) < 0.005
    assert abs(float(y.detach().mean()) - 1.0) < 0.01  # inverted scaling keeps the expectation
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # gradient flows through kept elements only, scaled
    torch.manual_seed(1)
    assert torch.equal(drop(x), y)  # the global seed makes it reproducible
    with pytest.raises(ValueError):
        Dropout(1.0)


def test_hidden_at_chosen_positions_equals_the_full_forward_and_its_gradients() -> None:
    """The last block runs only where asked; values and gradients match reading the full output."""
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=30, dim=16, heads=2, layers=2, max_len=10, num_types=3)).eval()
    items = torch.randint(1, 31, (4, 10))
    types = torch.randint(1, 4, (4, 10))
    positions = torch.tensor([3, 9, 12, 25, 39])
    full = model(items, types).reshape(-1, 16)[positions]
    full.pow(2).sum().backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    picked = model(items, types, positions=positions)
    picked.pow(2).sum().backward()
    assert picked.shape == (5, 16) and torch.allclose(picked, full, atol=1e-6)
    for name, param in model.named_parameters():
        if name in expected:
            assert torch.allclose(param.grad, expected[name], atol=1e-5), name
    lengths = torch.tensor([10, 4, 1, 7])
    newest = model(items, types)[torch.arange(4), lengths - 1]
    assert torch.allclose(model.encode(items, lengths, types), newest, atol=1e-6)


def kernels_in_training_step(model: SASRec, items: torch.Tensor) -> set[str]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model(items).sum().backward()
    return {event.key for event in prof.key_averages()}


def test_training_uses_the_fused_attention_kernel_and_no_dropout_on_attention_weights() -> None:
    items = torch.randint(1, 31, (4, 10))
    model = SASRec(SASRecConfig(num_items=30, dim=16, heads=2, layers=2, max_len=10, dropout=0.3)).train()
    kernels = kernels_in_training_step(model, items)
    assert any("flash_attention" in k for k in kernels) and "aten::bernoulli_" not in kernels


def test_settings_reach_the_model_config() -> None:
    from freshrec.config import load_settings
    from freshrec.pipeline import model_config

    settings = load_settings(model={"dropout": 0.4, "dim": 32, "max_len": 20})
    config = model_config(settings, num_items=10, num_types=2)
    assert (config.dropout, config.dim, config.max_len, config.num_items, config.num_types) == (0.4, 32, 20, 10, 2)


def test_a_stored_config_with_keys_that_only_shaped_training_still_loads() -> None:
    stored = {**make().config.to_dict(), "attention_dropout": 0.2, "towers": 1}
    assert SASRecConfig.from_dict(stored) == make().config
    with pytest.raises(ValueError, match="towers"):
        SASRecConfig.from_dict({**stored, "towers": 3})


def test_set_dropout_changes_every_rate_but_not_the_config() -> None:
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=30, dim=16, heads=2, layers=2, max_len=10, dropout=0.3)).train()
    items = torch.randint(1, 31, (4, 10))
    assert not torch.equal(model(items), model(items))  # dropout on
    model.set_dropout(0.0)
    assert torch.equal(model(items), model(items)) and model.config.dropout == 0.3
    with pytest.raises(ValueError):
        model.set_dropout(1.0)

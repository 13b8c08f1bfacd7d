import numpy as np
import pytest
import torch

from freshrec.config import TrainSettings
from freshrec.model.data import SequenceData, leave_one_out
from freshrec.model.sasrec import SASRec, SASRecConfig
from freshrec.model.train import Trainer, make_optimizer


def cyclic_data(n_users: int = 60, n_items: int = 20, length: int = 12, seed: int = 0) -> SequenceData:
    """Each user walks i -> i+1 (mod N) from a random start: perfectly learnable, popularity-free."""
    rng = np.random.default_rng(seed)
    items = [((rng.integers(n_items) + np.arange(length)) % n_items) + 1 for _ in range(n_users)]
    return SequenceData([str(u) for u in range(n_users)], items, [np.ones(length, dtype=np.int64)] * n_users, n_items)


def fit(data: SequenceData, seed: int = 1, epochs: int = 15, exclude_seen: bool = False) -> tuple[SASRec, dict]:
    torch.manual_seed(123)
    split = leave_one_out(data)
    model = SASRec(SASRecConfig(num_items=data.num_items, dim=16, heads=2, layers=1, max_len=16, dropout=0.1))
    settings = TrainSettings(
        epochs=epochs,
        patience=epochs,
        lr=5e-3,
        batch_size=16,
        seed=seed,
        device="cpu",
        compile="off",
        precision="fp32",
        exclude_seen=exclude_seen,
    )
    result = Trainer(model, settings, progress=False).fit(split.train_items, split.train_types, split.valid)
    return model, result.valid


def test_learns_a_sequential_rule() -> None:
    _, valid = fit(cyclic_data())
    assert valid["hr@10"] > 0.9


def test_exclude_seen_learns_the_rule_without_pushing_seen_items_down() -> None:
    data = cyclic_data()
    split = leave_one_out(data)
    seen_mass = {}
    for flag in (False, True):
        model, valid = fit(data, exclude_seen=flag)
        assert valid["hr@10"] > 0.9  # the ranking after filtering seen items is learnt either way
        model.eval()
        mass = []
        with torch.no_grad():
            for history in split.valid.items:
                items = torch.from_numpy(history[-16:]).unsqueeze(0)
                probs = (model.encode(items, torch.tensor([items.shape[1]])) @ model.item_vectors().T).softmax(-1)
                mass.append(float(probs[0, torch.from_numpy(np.unique(history)) - 1].sum()))
        seen_mass[flag] = np.mean(mass)
    # as negatives, seen items are pushed down; left out of the softmax they are not (0.47 vs 0.61 here)
    assert seen_mass[True] > seen_mass[False] + 0.05


def test_same_seed_same_weights() -> None:
    data = cyclic_data(n_users=20)
    a, _ = fit(data, seed=5, epochs=2)
    b, _ = fit(data, seed=5, epochs=2)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_early_stopping_restores_best_epoch() -> None:
    data = cyclic_data(n_users=20)
    split = leave_one_out(data)
    model = SASRec(SASRecConfig(num_items=data.num_items, dim=8, heads=1, layers=1, max_len=16))
    settings = TrainSettings(epochs=50, patience=2, lr=5e-3, batch_size=16, device="cpu", compile="off")
    result = Trainer(model, settings, progress=False).fit(split.train_items, split.train_types, split.valid)
    assert result.stopped in ("early_stopping", "max_epochs")
    best = max(h.valid["ndcg@10"] for h in result.history)
    assert result.valid["ndcg@10"] == best
    assert result.history[result.best_epoch - 1].valid["ndcg@10"] == best


def test_item_table_gets_its_own_learning_rate() -> None:
    model = SASRec(SASRecConfig(num_items=10, dim=8, heads=2, layers=1, max_len=4))
    plain = make_optimizer(model, 1e-3, 0.1)
    assert len(plain.param_groups) == 2  # decay / no decay, one learning rate
    scaled = make_optimizer(model, 1e-3, 0.1, item_lr_scale=10.0)
    [items] = [g for g in scaled.param_groups if any(p is model.item_emb.weight for p in g["params"])]
    assert items["lr"] == pytest.approx(1e-2) and items["weight_decay"] == 0.1
    others = [p for g in scaled.param_groups if g is not items for p in g["params"]]
    assert len(others) + 1 == len(list(model.parameters()))
    assert all(g["lr"] == pytest.approx(1e-3) for g in scaled.param_groups if g is not items)


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_compiled_step_does_not_recompile_when_batch_shapes_change(exclude_seen: bool) -> None:
    """Every length-bucketed batch has its own shape; a compiled step that recompiled for each one (the
    chunked loss's Python loop once made dynamo guard on the number of targets) would spend minutes
    compiling instead of training."""
    from torch._dynamo.testing import CompileCounter

    from freshrec.model.losses import FullSoftmaxCE
    from freshrec.model.train import forward_loss

    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=300, dim=16, heads=1, layers=1, max_len=40))
    loss = FullSoftmaxCE(chunk=7, exclude_seen=exclude_seen)
    counter = CompileCounter()
    step = torch.compile(forward_loss, dynamic=True, backend=counter)
    frames = []
    for batch, length in [(4, 10), (5, 13), (6, 17), (3, 21), (7, 9)]:
        items = torch.randint(1, 301, (batch, length))
        positions = torch.arange(batch * length - batch)
        targets = torch.randint(1, 301, (len(positions),))
        step(model, loss, items, torch.ones_like(items), targets, positions).backward()
        frames.append(counter.frame_count)
    assert frames[0] > 0
    assert frames[-1] == frames[0]


@pytest.mark.parametrize(("mode", "expected"), [("auto", False), ("on", True), ("off", False)])
def test_compile_auto_leaves_fp32_cpu_training_eager(mode: str, expected: bool) -> None:
    data = cyclic_data(n_users=10)
    model = SASRec(SASRecConfig(num_items=data.num_items, dim=16, heads=2, layers=1, max_len=16))
    settings = TrainSettings(device="cpu", precision="fp32", compile=mode, compile_min_positions=0)
    trainer = Trainer(model, settings, progress=False)
    trainer.prepare(data.items, data.types)
    assert trainer.compiled is expected and trainer.loss.fused is expected


def test_each_tower_learns_from_its_own_loss() -> None:
    from freshrec.model.losses import FullSoftmaxCE
    from freshrec.model.train import forward_loss
    from tests.model.test_sasrec import tower_of

    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=20, dim=8, heads=2, layers=1, max_len=6, dropout=0.0, towers=2))
    items = torch.tensor([[1, 4, 6, 2, 0], [3, 5, 7, 9, 11]])
    positions = torch.tensor([0, 1, 2, 5, 6, 7, 8])
    targets = torch.tensor([4, 6, 2, 5, 7, 9, 11])
    loss = forward_loss(model, FullSoftmaxCE(), items, torch.zeros_like(items), targets, positions)
    loss.backward()
    towers = [tower_of(model, j) for j in range(2)]
    alone = [forward_loss(t, FullSoftmaxCE(), items, torch.zeros_like(items), targets, positions) for t in towers]
    # the mean of the towers' own losses, and each tower's gradient is its own loss's (halved by the mean)
    assert torch.allclose(loss, (alone[0] + alone[1]) / 2, atol=1e-5)
    alone[1].backward()
    grad = model.more_towers[0].blocks[0].attn.qkv.weight.grad
    assert torch.allclose(grad, towers[1].blocks[0].attn.qkv.weight.grad / 2, atol=1e-6)
    assert torch.allclose(model.item_emb.weight.grad[:, 8:], towers[1].item_emb.weight.grad / 2, atol=1e-6)


def test_tower_step_with_the_same_batch_for_each_tower_is_the_shared_step() -> None:
    import copy

    from freshrec.model.data import Batch
    from freshrec.model.losses import FullSoftmaxCE
    from freshrec.model.train import tower_step, train_step

    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=20, dim=8, heads=2, layers=1, max_len=6, dropout=0.0, towers=2))
    twin = copy.deepcopy(model)
    items = torch.tensor([[1, 4, 6, 2, 0], [3, 5, 7, 9, 11]])
    batch = Batch(items, torch.zeros_like(items), torch.tensor([[4, 6, 2, 0, 0], [5, 7, 9, 11, 13]]))
    cpu = torch.device("cpu")
    shared = train_step(model, make_optimizer(model, 1e-2, 0.1), batch, FullSoftmaxCE(), cpu)
    own = tower_step(twin, make_optimizer(twin, 1e-2, 0.1), [batch, batch], FullSoftmaxCE(), cpu)
    assert own == pytest.approx(shared, abs=1e-5)
    for (name, a), b in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), name


def test_tower_step_trains_each_tower_on_its_own_batch_only() -> None:
    from freshrec.model.data import Batch
    from freshrec.model.losses import FullSoftmaxCE
    from freshrec.model.train import forward_loss, tower_step
    from tests.model.test_sasrec import tower_of

    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=20, dim=8, heads=2, layers=1, max_len=6, dropout=0.0, towers=2))
    towers = [tower_of(model, j) for j in range(2)]
    first = torch.tensor([[1, 4, 6, 2, 0]])
    second = torch.tensor([[3, 5, 7, 9, 11], [12, 13, 0, 0, 0]])
    batches = [
        Batch(first, torch.zeros_like(first), torch.tensor([[4, 6, 2, 0, 0]])),
        Batch(second, torch.zeros_like(second), torch.tensor([[5, 7, 9, 11, 0], [13, 0, 0, 0, 0]])),
    ]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # keeps the weights; the gradients stay readable
    tower_step(model, optimizer, batches, FullSoftmaxCE(), torch.device("cpu"), max_grad_norm=None)
    for j, (tower, batch) in enumerate(zip(towers, batches, strict=True)):
        flat = batch.targets.reshape(-1)
        positions = flat.nonzero().squeeze(1)
        forward_loss(tower, FullSoftmaxCE(), batch.items, batch.types, flat[positions], positions).backward()
        # each tower's gradient is its own batch's loss gradient, halved by the mean over towers
        mine = model.blocks if j == 0 else model.more_towers[0].blocks
        assert torch.allclose(mine[0].ffn[0].weight.grad, tower.blocks[0].ffn[0].weight.grad / 2, atol=1e-6)
        cols = slice(8 * j, 8 * (j + 1))
        assert torch.allclose(model.item_emb.weight.grad[:, cols], tower.item_emb.weight.grad / 2, atol=1e-6)
    with pytest.raises(ValueError, match="2-tower"):
        tower_step(model, optimizer, batches[:1], FullSoftmaxCE(), torch.device("cpu"))


def test_tower_epoch_gives_each_tower_its_own_shuffle_of_every_batch() -> None:
    from freshrec.model.data import TrainingBatches
    from freshrec.model.train import tower_epoch

    seqs = [np.arange(1, 3 + n % 7) + n for n in range(40)]
    batches = TrainingBatches(seqs, [np.ones_like(s) for s in seqs], max_len=16, batch_size=4)
    steps = list(tower_epoch(batches, np.random.default_rng(3), towers=3))
    assert len(steps) == len(batches) and all(len(step) == 3 for step in steps)
    firsts = []
    for j in range(3):
        column = [step[j] for step in steps]
        # every training position once per epoch, for each tower
        assert sum(int(torch.count_nonzero(b.targets)) for b in column) == batches.positions
        firsts.append(tuple(column[0].items[:, 0].tolist()))
    assert len(set(firsts)) > 1  # the towers do not step through the same order


def test_towers_with_their_own_order_learn_a_sequential_rule() -> None:
    data = cyclic_data()
    split = leave_one_out(data)
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=data.num_items, dim=16, heads=2, layers=1, max_len=16, dropout=0.1, towers=2))
    settings = TrainSettings(
        epochs=15, patience=15, lr=5e-3, batch_size=16, seed=1, device="cpu", compile="on", tower_order="own"
    )
    trainer = Trainer(model, settings, progress=False)
    result = trainer.fit(split.train_items, split.train_types, split.valid)
    assert result.valid["hr@10"] > 0.9
    assert not result.compiled  # each tower's own batch runs eagerly

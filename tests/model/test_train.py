import numpy as np
import pytest
import torch

from freshrec.config import TrainSettings
from freshrec.model.data import SequenceData, leave_one_out
from freshrec.model.evaluate import model_scorer
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


def test_optimizer_decays_matrices_only() -> None:
    model = SASRec(SASRecConfig(num_items=10, dim=8, heads=2, layers=1, max_len=4))
    decay, no_decay = make_optimizer(model, 1e-3, 0.1).param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert any(p is model.item_emb.weight for p in decay["params"])
    assert any(p is model.pos_emb.weight for p in no_decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"] if p is not model.pos_emb.weight)
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_validation_scores_a_fixed_sample_of_users() -> None:
    data = cyclic_data(n_users=40)
    split = leave_one_out(data)
    settings = TrainSettings(epochs=3, patience=3, device="cpu", compile="off", valid_users=15, seed=3)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = SASRec(SASRecConfig(num_items=data.num_items, dim=8, heads=1, layers=1, max_len=16))
        result = Trainer(model, settings, progress=False).fit(split.train_items, split.train_types, split.valid)
        runs.append(result)
    assert len(split.valid) == 40
    assert all(h.valid["n"] == 15 for r in runs for h in r.history)  # the same number every epoch
    # the same users each run and epoch: the sample is fixed by the seed
    assert [h.valid for h in runs[0].history] == [h.valid for h in runs[1].history]


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
    settings = TrainSettings(device="cpu", precision="fp32", compile=mode)
    trainer = Trainer(model, settings, progress=False)
    # a dataset big enough that 'auto' would compile were it not for the fp32 CPU
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("freshrec.model.train.COMPILE_MIN_POSITIONS", 0)
        trainer.prepare(data.items, data.types)
    assert trainer.compiled is expected and trainer.loss.fused is expected


def test_the_conversion_head_learns_what_is_bought_not_only_what_comes_next() -> None:
    """After item 1 users view item 2 three times as often as item 3, but only item 3 is ever bought: the
    next interaction is 2, the next conversion is 3, and the blend sits between them."""
    view, purchase = 1, 2
    rng = np.random.default_rng(0)
    items, types = [], []
    for _ in range(200):
        seq, kinds = [], []
        for _ in range(3):
            nxt, kind = (2, view) if rng.random() < 0.75 else (3, purchase)
            seq += [int(rng.integers(4, 10)), 1, nxt]
            kinds += [view, view, kind]
        items.append(np.array([*seq, 4, 5]))  # two more entries: the holdout leaves every pattern in training
        types.append(np.array([*kinds, view, view]))
    data = SequenceData([str(u) for u in range(200)], items, types, num_items=10)
    split = leave_one_out(data)
    torch.manual_seed(0)
    config = SASRecConfig(
        num_items=10, dim=16, heads=1, layers=1, max_len=8, dropout=0.0, num_types=2, conversion_types=(purchase,)
    )
    model = SASRec(config)
    settings = TrainSettings(
        epochs=40, patience=40, lr=1e-2, batch_size=32, device="cpu", compile="off", precision="fp32"
    )
    Trainer(model, settings, progress=False).fit(split.train_items, split.train_types, split.valid)
    history, kinds = [np.array([5, 1])], [np.array([view, view])]
    scores = {w: model_scorer(model, conversion=w)(history, kinds)[0] for w in (0.0, 0.5, 1.0)}
    assert scores[0.0][2] > scores[0.0][3]  # engagement: the usual next view
    assert scores[1.0][3] > scores[1.0][2]  # conversion: the item that is bought
    gap = {w: float(s[3] - s[2]) for w, s in scores.items()}
    assert gap[0.0] < gap[0.5] < gap[1.0]

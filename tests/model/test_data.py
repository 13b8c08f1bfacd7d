import numpy as np
import pytest

from freshrec.model.data import SequenceData, TrainingBatches, leave_one_out, pad_histories


def seqs(*lists: list[int]) -> SequenceData:
    items = [np.array(x, dtype=np.int64) for x in lists]
    return SequenceData([f"u{i}" for i in range(len(items))], items, [np.ones_like(x) for x in items], num_items=9)


def test_leave_one_out_protocol() -> None:
    split = leave_one_out(seqs([1, 2, 3, 4, 5], [6, 7]))
    assert [s.tolist() for s in split.train_items] == [[1, 2, 3], [6, 7]]  # short users train only
    assert split.valid.items[0].tolist() == [1, 2, 3] and split.valid.targets.tolist() == [4]
    assert split.test is not None
    assert split.test.items[0].tolist() == [1, 2, 3, 4] and split.test.targets.tolist() == [5]
    assert split.valid.users == ["u0"]


def test_valid_holdout_trains_on_all_but_last() -> None:
    split = leave_one_out(seqs([1, 2, 3, 4, 5]), holdout="valid")
    assert split.train_items[0].tolist() == [1, 2, 3, 4]
    assert split.valid.targets.tolist() == [5] and split.test is None


def test_training_batches_shift_targets_and_trim_padding() -> None:
    data = seqs([1, 2, 3, 4], [6, 7], [8])
    tb = TrainingBatches(data.items, data.types, max_len=3, batch_size=8)
    assert tb.positions == 3 + 1  # the one-item sequence cannot train
    [batch] = list(tb.epoch(np.random.default_rng(0)))
    rows = {tuple(r) for r in batch.items.tolist()}
    assert rows == {(1, 2, 3), (6, 0, 0)}  # inputs right-padded, trimmed to the longest, width 3
    pairs = {tuple(x): tuple(y) for x, y in zip(batch.items.tolist(), batch.targets.tolist(), strict=True)}
    assert pairs[(1, 2, 3)] == (2, 3, 4) and pairs[(6, 0, 0)] == (7, 0, 0)


def test_pad_histories_keeps_newest() -> None:
    x, _t, lengths = pad_histories([np.array([1, 2, 3, 4]), np.array([5])], [np.ones(4, int), np.ones(1, int)], 3)
    assert x.tolist() == [[2, 3, 4], [5, 0, 0]] and lengths.tolist() == [3, 1]


def test_windows_make_every_interaction_a_target_once() -> None:
    data = seqs(list(range(1, 10)))  # 9 entries -> 8 targets
    windowed = TrainingBatches(data.items, data.types, max_len=3, batch_size=8)
    assert sorted(windowed.lengths.tolist()) == [2, 3, 3]
    targets = sorted(int(t) for t in windowed.targets.ravel() if t)
    assert targets == list(range(2, 10))
    for x, y in zip(windowed.inputs, windowed.targets, strict=True):
        real = y > 0
        assert (y[real] == x[real] + 1).all()  # each target follows its own input
    assert [7, 8, 9] in windowed.targets.tolist()  # the newest window holds the newest targets


def test_overlapping_windows_give_targets_context_and_score_each_once() -> None:
    data = seqs(list(range(1, 31)))  # 30 entries -> 29 targets
    tb = TrainingBatches(data.items, data.types, max_len=8, batch_size=8, overlap=5)
    targets = sorted(int(t) for t in tb.targets.ravel() if t)
    assert targets == list(range(2, 31))  # every interaction is a target exactly once
    assert tb.positions == 29
    for x, y in zip(tb.inputs, tb.targets, strict=True):
        real = y > 0
        assert (y[real] == x[real] + 1).all()
        first = int(np.argmax(real))
        if x[0] != 1:  # every window but the oldest reads 5 entries of context before its first target
            assert first == 5
    plain = TrainingBatches(data.items, data.types, max_len=8, batch_size=8)
    assert len(tb.lengths) > len(plain.lengths)  # the price: more (overlapping) windows


def test_overlap_must_leave_room_for_targets() -> None:
    data = seqs([1, 2, 3])
    with pytest.raises(ValueError, match="window_overlap"):
        TrainingBatches(data.items, data.types, max_len=3, batch_size=8, overlap=3)

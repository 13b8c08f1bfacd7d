"""The reservoir replay buffer keeps a uniform sample of everything it was given."""

from __future__ import annotations

import numpy as np
import pytest

from freshrec.online.buffer import ReservoirBuffer


@pytest.mark.parametrize("batched", [False, True])
def test_reservoir_keeps_old_and_new_keys_alike(batched: bool) -> None:
    keys = [str(k) for k in range(1000)]
    early_share = []
    for seed in range(200):
        buf = ReservoirBuffer(capacity=50, seed=seed)
        if batched:  # uneven chunks, the first one only part-filling the buffer
            for lo, hi in [(0, 30), (30, 31), (31, 400), (400, 1000)]:
                buf.extend(keys[lo:hi])
        else:
            for k in keys:
                buf.add(k)
        assert len(buf) == 50 and buf.seen == 1000 and len(set(buf.items)) == 50
        early_share.append(np.mean([int(k) < 500 for k in buf.items]))
    # every key is kept with probability 50 / 1000, so half the sample is from the first half of the stream
    # (standard error of this mean: sqrt(0.25 / 50 / 200) = 0.005)
    assert abs(np.mean(early_share) - 0.5) < 0.02


def test_extend_fills_before_replacing() -> None:
    buf = ReservoirBuffer(capacity=3, seed=1)
    buf.extend(["a", "b"])
    assert buf.items == ["a", "b"] and buf.seen == 2
    buf.extend(["c", "d", "e"])  # c takes the free slot; d and e may each replace any of the three
    assert buf.seen == 5 and len(buf) == 3 and set(buf.items) <= set("abcde")
    buf.extend([])
    assert buf.seen == 5

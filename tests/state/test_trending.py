import numpy as np

from freshrec.state.trending import Trending


def test_decay_halves_per_half_life() -> None:
    t = Trending(half_life_s=10.0)
    t.add([1], [0.0])
    t.add([2], [10.0])
    s = t.scores(2)
    assert np.allclose(s, [0.0, 0.5, 1.0])


def test_recent_events_outrank_older_bursts() -> None:
    t = Trending(half_life_s=3600.0)
    t.add([1] * 5, [0.0] * 5)  # five events a day ago
    t.add([2] * 2, [86400.0] * 2)  # two events now
    s = t.scores(2)
    assert s[2] > s[1]


def test_long_streams_do_not_overflow() -> None:
    t = Trending(half_life_s=1.0)
    for step in range(0, 100_000, 500):
        t.add([1, 2], [float(step), float(step)])
    s = t.scores(3)
    assert np.all(np.isfinite(s)) and s[1] > 0 and s[3] == 0

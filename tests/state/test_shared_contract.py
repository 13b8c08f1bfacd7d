"""Trending and onboarding preferences: one contract, run on the in-process and the Redis backends (the
Redis ones are what every worker of a scaled-out deployment reads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from freshrec.schema import EventRecord
from freshrec.state.shared import open_preferences, open_trending
from freshrec.state.trending import Trending

HOUR = 3600.0


@pytest.fixture(params=["memory", "redis"])
def url(request: pytest.FixtureRequest) -> str:
    return "memory://" if request.param == "memory" else request.getfixturevalue("empty_redis")


def test_trending_decays_counts_and_remembers_first_sight(url: str) -> None:
    t = open_trending(url, HOUR, [24 * HOUR])
    t.add([1, 2, 2], [0.0, 0.0, 0.0])
    t.add([1], [2 * HOUR])
    np.testing.assert_allclose(t.scores(3), [0.0, 1.25, 0.5, 0.0])
    np.testing.assert_allclose(t.scores(3, which=1), [0.0, 1 + 2 ** (-2 / 24), 2 * 2 ** (-2 / 24), 0.0])
    assert t.counts(3).tolist() == [0, 2, 2, 0]
    np.testing.assert_array_equal(t.first_seen(3), [np.nan, 0.0, 0.0, np.nan])
    assert t.clock == 2 * HOUR
    # a catalogue larger than anything seen: zeros, not an error
    assert t.scores(5).shape == (6,)


def test_trending_matches_the_reference_over_a_long_stream(url: str) -> None:
    """Months of events at a one-hour half-life force the reference time forward many times."""
    rng = np.random.default_rng(0)
    ts = np.sort(rng.uniform(0, 90 * 24 * HOUR, 3000))
    items = rng.integers(1, 40, 3000)
    shared, reference = open_trending(url, HOUR, [24 * HOUR]), Trending(HOUR, [24 * HOUR])
    for start in range(0, 3000, 250):
        shared.add(items[start : start + 250], ts[start : start + 250])
        reference.add(items[start : start + 250], ts[start : start + 250])
    for which in (0, 1):
        np.testing.assert_allclose(shared.scores(40, which), reference.scores(40, which), rtol=1e-9, atol=1e-12)
    assert shared.counts(40).tolist() == reference.counts(40).tolist()


def test_negative_events_never_trend(url: str) -> None:
    t = open_trending(url, HOUR)
    events = [EventRecord(1, "u", "a", "view", 0.0), EventRecord(2, "u", "b", "skip", 0.0)]
    t.add_events(events, [1, 2], frozenset({"skip"}))
    assert t.counts(2).tolist() == [0, 1, 0]


def test_preferences_are_kept_until_deleted(url: str, tmp_path: Path) -> None:
    prefs = open_preferences(url, tmp_path / "preferences.db")
    prefs.set("u1", ["camping", "running", "camping"])
    assert prefs.get("u1") == ["camping", "running"] and prefs.get("u2") is None
    prefs.close()
    again = open_preferences(url, tmp_path / "preferences.db")
    assert again.get("u1") == ["camping", "running"]
    assert again.delete("u1") and not again.delete("u1")
    assert again.get("u1") is None

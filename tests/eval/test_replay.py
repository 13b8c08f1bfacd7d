"""Streaming replay (prequential): metric bookkeeping by hand, and a stream where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from freshrec.eval.replay import Outcome, ReplayOptions, cut_time, prequential, rank_in, run_replay, summarize_outcomes
from freshrec.schema import EventRecord
from tests.conftest import make_settings


class Fixed:
    """A strategy that always answers the same list and records what it learned."""

    def __init__(self, name: str, items: list[str]) -> None:
        self.name, self.items, self.learned = name, items, []

    def recommend(self, user_id: str, k: int) -> list[str]:
        return self.items[:k]

    def learn(self, event: EventRecord) -> None:
        self.learned.append(event.item_id)


def ev(n: int, user: str, item: str, ts: float, kind: str = "view") -> EventRecord:
    return EventRecord(n, user, item, kind, ts)


def test_score_then_learn_by_hand() -> None:
    strategy = Fixed("fixed", ["a", "b", "c"])
    ingested: list[str] = []
    stream = [
        ev(1, "u1", "b", 1.0),
        ev(2, "u2", "z", 2.0),
        ev(3, "u1", "b", 3.0),
        ev(4, "u3", "a", 4.0, "skip"),
        ev(5, "u3", "c", 5.0),
    ]
    outcomes = list(prequential(stream, [strategy], lambda e: ingested.append(e.item_id), 3, frozenset({"skip"}), {}))
    # scored: u1->b (rank 1), u2->z (miss), u3->c (rank 2); u1's repeat of b and u3's skip are not scored
    assert [o.ranks["fixed"] for o in outcomes] == [1, 3, 2]
    assert ingested == strategy.learned == ["b", "z", "b", "a", "c"]  # every event is learned after scoring
    result = summarize_outcomes(outcomes, ["fixed"], k=3, windows=2)["fixed"]
    overall = result["overall"]
    assert overall["hr@3"] == pytest.approx(2 / 3)
    assert overall["ndcg@3"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(4)) / 3)
    assert overall["mrr@3"] == pytest.approx((1 / 2 + 1 / 3) / 3)
    # two equal time windows over [1, 5]: {1, 2} and {5}
    assert [w["n"] for w in result["windows"]] == [2, 1]
    assert result["windows"][1]["hr@3"] == 1.0


def test_events_refused_by_scored_are_learned_but_neither_scored_nor_seen() -> None:
    strategy = Fixed("fixed", ["a", "b"])
    stream = [ev(1, "bot", "a", 1.0), ev(2, "u1", "a", 2.0), ev(3, "u1", "b", 3.0)]
    bot_free = [o.ranks["fixed"] for o in prequential(stream[1:], [strategy], lambda e: None, 2, frozenset(), {})]
    seen: dict[str, set[str]] = {}
    outcomes = list(
        prequential(stream, [strategy], lambda e: None, 2, frozenset(), seen, scored=lambda e: e.user_id != "bot")
    )
    assert [o.ranks["fixed"] for o in outcomes] == bot_free == [0, 1]
    assert "bot" not in seen and strategy.learned == ["a", "b", "a", "a", "b"]


def test_outcomes_split_by_new_and_known_items() -> None:
    strategy = Fixed("fixed", ["a", "n1", "b"])
    stream = [ev(1, "u1", "a", 1.0), ev(2, "u1", "n1", 2.0), ev(3, "u2", "n2", 3.0), ev(4, "u2", "b", 4.0)]
    # "a" and "b" had events before the stream (u0's history); "n1" and "n2" are new
    outcomes = list(prequential(stream, [strategy], lambda e: None, 3, frozenset(), {"u0": {"a", "b"}}))
    assert [o.new_item for o in outcomes] == [False, True, True, False]
    result = summarize_outcomes(outcomes, ["fixed"], k=3, windows=1)["fixed"]
    assert result["new_items"]["n"] == 2 and result["new_items"]["hr@3"] == 0.5  # n1 at rank 1, n2 missed
    assert result["new_items"]["ndcg@3"] == pytest.approx(1 / np.log2(3) / 2)
    assert result["known_items"]["n"] == 2 and result["known_items"]["hr@3"] == 1.0
    # an explicit set of known items overrides what ``seen`` implies
    explicit = list(prequential(stream, [strategy], lambda e: None, 3, frozenset(), {}, known_items=frozenset({"a"})))
    assert [o.new_item for o in explicit] == [False, True, True, True]


def test_rank_in_and_cut() -> None:
    assert rank_in(["x", "y"], "y", 10) == 1 and rank_in(["x"], "q", 10) == 10
    events = [ev(i, "u", str(i), float(t)) for i, t in enumerate([0, 1, 2, 10])]
    assert cut_time(events, ReplayOptions(cut=0.5)) == 5.0
    assert cut_time(events, ReplayOptions(cut=0.5, cut_by="events")) == 2.0
    with pytest.raises(ValueError):
        ReplayOptions(cut=1.5)
    assert isinstance(Outcome(0.0, {}), Outcome)


def switching_stream(n_users: int = 120, per_category: int = 12, seed: int = 0) -> list[EventRecord]:
    """Users browse one category along a fixed chain, then switch to another category halfway."""
    rng = np.random.default_rng(seed)
    n_categories = 6
    events: list[EventRecord] = []
    for u in range(n_users):
        first, second = rng.choice(n_categories, size=2, replace=False)
        t = float(rng.uniform(0, 10))
        for half, category in ((0, first), (1, second)):
            start = int(rng.integers(per_category))
            t = max(t, 100.0 * half + float(rng.uniform(0, 10)))
            for step in range(8):
                item = f"c{category}-{(start + step) % per_category}"
                events.append(EventRecord(len(events), f"u{u}", item, "view", t))
                t += float(rng.uniform(0.5, 2.0))
    events.sort(key=lambda e: (e.ts, e.offset))
    return events


def test_live_sequences_beat_a_static_model_when_users_switch(tmp_path) -> None:
    events = switching_stream()
    settings = make_settings(tmp_path / "unused", train={"epochs": 30, "patience": 30})
    report = run_replay(
        events,
        settings,
        ReplayOptions(cut=0.5, k=10, windows=3),
        progress=False,
        dataset="switching",
        work_dir=tmp_path,
    )
    live = report.strategies["live-sequences"]["overall"]["ndcg@10"]
    static = report.strategies["static"]["overall"]["ndcg@10"]
    assert report.events_scored > 500
    assert live > 2 * static and live > 0.2
    assert report.strategies["co-occurrence"]["overall"]["ndcg@10"] > static
    md = report.to_markdown()
    assert "| live-sequences |" in md and "| live+online |" in md and "forgetting" in md
    change = report.details["live+online"]["older_holdout_change"]
    for metric in ("ndcg@10", "mrr"):
        lo, hi = change[metric]["relative_ci95"]
        assert lo <= change[metric]["relative"] <= hi and change[metric]["users"] > 0
    assert "older-holdout mrr change" in md and "95% interval" in md

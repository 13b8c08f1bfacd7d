"""Candidate sources on tiny hand-made streams whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from freshrec.candidates.base import CandidateSource
from freshrec.candidates.cooccurrence import CoOccurrence
from freshrec.candidates.sknn import SessionKNN
from freshrec.schema import EventRecord
from freshrec.sequence import EventTypes
from freshrec.state.memory import MemoryStateStore

TYPES = EventTypes(["view", "skip"], negative=["skip"])


def state_of(rows: list[tuple[str, int]] | list[tuple[str, int, str]]) -> MemoryStateStore:
    """A live state fed (user, item[, type]) rows in this order, one second apart."""
    state = MemoryStateStore(TYPES, max_len=50)
    events = [EventRecord(n + 1, r[0], str(r[1]), r[2] if len(r) > 2 else "view", float(n)) for n, r in enumerate(rows)]
    state.apply(events, [r[1] for r in rows])
    return state


def propose(source: CandidateSource, state: MemoryStateStore, user: str, k: int = 10) -> dict[int, float]:
    snap = state.get(user)
    seen = snap.seen if snap is not None else np.zeros(0, dtype=np.int64)
    [p] = source.propose([snap], k, [seen])
    return dict(zip(p.items.tolist(), p.scores.tolist(), strict=True))


def test_co_occurrence_counts_followers_within_the_window_and_votes_newest_first() -> None:
    # a: 1 2 3 4 5 -> 1 is followed by 2, 3, 4 (window 3), not 5
    state = state_of([("a", 1), ("a", 2), ("a", 3), ("a", 4), ("a", 5), ("b", 9), ("b", 1), ("u", 1), ("u", 9)])
    assert state.followers([1])[0] == {2: 1.0, 3: 1.0, 4: 1.0, 9: 1.0}  # 9 followed 1 in u
    assert state.followers([9])[0] == {1: 1.0}
    # u's newest is 9 (weight 1), then 1 (weight 1/2); 1 and 9 are seen, so excluded
    assert propose(CoOccurrence(state), state, "u") == {2: 0.5, 3: 0.5, 4: 0.5}


def test_co_occurrence_ignores_negative_events_and_repeats() -> None:
    state = state_of([("a", 1), ("a", 1), ("a", 7, "skip"), ("a", 2), ("u", 1)])
    assert state.followers([1])[0] == {2: 1.0}  # the repeat merged, the skip is no entry
    assert propose(CoOccurrence(state), state, "u") == {2: 1.0}


def test_a_user_without_state_gets_nothing() -> None:
    state = state_of([("a", 1), ("a", 2)])
    for source in (CoOccurrence(state), SessionKNN(state)):
        assert propose(source, state, "nobody") == {}


def test_session_knn_weighs_neighbours_by_shared_recent_items_and_votes_around_the_match() -> None:
    # u: 1 2 (2 newest, weight 1; 1 weight 1/2). n1 shares both (similarity 1.5), n2 only 1 (0.5).
    rows = [("n1", 1), ("n1", 2), ("n1", 3), ("n2", 1), ("n2", 4), ("u", 1), ("u", 2)]
    state = state_of(rows)
    scores = propose(SessionKNN(state), state, "u")
    # n1's newest shared entry is 2: 3 follows at distance 1; n2's is 1: 4 follows at distance 1
    assert scores == pytest.approx({3: 1.5, 4: 0.5})


def test_session_knn_decays_with_distance_and_halves_what_came_before() -> None:
    rows = [("n", 5), ("n", 1), ("n", 6), ("n", 7), ("u", 1)]
    state = state_of(rows)
    scores = propose(SessionKNN(state), state, "u")
    decay = math.exp(-1 / 3)
    assert scores == pytest.approx({6: 1.0, 7: decay, 5: 0.5})


def test_session_knn_leaves_out_the_user_and_seen_items() -> None:
    state = state_of([("u", 1), ("u", 2), ("n", 1), ("n", 2)])
    assert propose(SessionKNN(state), state, "u") == {}  # the neighbour has nothing the user has not seen


def test_sources_reflect_the_next_event_at_once() -> None:
    state = state_of([("a", 1), ("a", 2), ("u", 3)])
    for source in (CoOccurrence(state), SessionKNN(state)):
        assert 2 not in propose(source, state, "u")
    state.apply([EventRecord(99, "u", "1", "view", 99.0)], [1])  # u now had 1, which others followed with 2
    for source in (CoOccurrence(state), SessionKNN(state)):
        assert 2 in propose(source, state, "u")


def test_proposals_hold_at_most_k_distinct_items_best_first() -> None:
    rows = [(f"n{m}", i) for m in range(5) for i in (1, 10 + m, 20 + m)] + [("u", 1)]
    state = state_of(rows)
    for source in (CoOccurrence(state), SessionKNN(state)):
        snap = state.get("u")
        [p] = source.propose([snap], 3, [snap.seen])
        assert len(p) == 3 and len(set(p.items.tolist())) == 3
        assert list(p.scores) == sorted(p.scores, reverse=True)

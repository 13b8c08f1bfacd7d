import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from freshrec.sequence import EventTypes, UserSequence


def test_time_order_with_ties_in_arrival_order() -> None:
    s = UserSequence(collapse_repeats=False)
    for item, ts in [(1, 10.0), (2, 5.0), (3, 10.0), (4, 7.0)]:
        s.add(item, 1, ts)
    assert list(s.items) == [2, 4, 1, 3]


def test_collapse_merges_consecutive_actions_on_one_item() -> None:
    s = UserSequence()
    for item, code, ts in [(1, 1, 1.0), (1, 3, 2.0), (1, 4, 3.0), (2, 1, 4.0), (1, 1, 5.0)]:
        s.add(item, code, ts)
    assert list(s.items) == [1, 2, 1]
    assert list(s.types) == [4, 1, 1]  # the purchase (code 4) replaced the view of item 1


def test_negative_events_are_seen_but_not_in_sequence() -> None:
    s = UserSequence()
    s.add(5, 1, 1.0)
    s.add(9, 7, 2.0, negative=True)
    assert list(s.items) == [5]
    assert s.seen_list() == [5, 9]
    assert s.has_seen(9) and not s.has_seen(4)


def test_window_keeps_newest() -> None:
    s = UserSequence(max_len=3)
    for i in range(1, 8):
        s.add(i, 1, float(i))
    assert list(s.items) == [5, 6, 7]
    assert s.seen_list() == list(range(1, 8))  # exclusion remembers the whole history


def test_event_types_registry() -> None:
    t = EventTypes(["view", "skip"], negative=["skip"])
    assert t.code == {"view": 1, "skip": 2}
    assert t.name(2) == "skip" and "view" in t and "buy" not in t


@given(st.lists(st.tuples(st.integers(1, 20), st.floats(0, 100, allow_nan=False)), max_size=60), st.integers(1, 30))
def test_sequence_is_sorted_by_time_and_bounded(events: list[tuple[int, float]], max_len: int) -> None:
    s = UserSequence(max_len=max_len, collapse_repeats=True)
    for item, ts in events:
        s.add(item, 1, ts)
    ts = np.frombuffer(s.ts, dtype=np.float64)
    assert len(s) <= max_len
    assert np.all(np.diff(ts) >= 0)
    assert s.seen_list() == sorted({i for i, _ in events})
    assert all(a != b for a, b in zip(list(s.items), list(s.items)[1:], strict=False)) or not s.collapse_repeats

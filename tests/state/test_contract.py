"""The StateStore contract, run against every backend.

Guarantees (from :class:`freshrec.state.base.StateStore`, :class:`freshrec.schema.UserSnapshot` and the
sequence rules in :mod:`freshrec.sequence`): after ``apply`` returns, ``get`` reflects the events, applied
in the order given; ``applied()`` is the highest offset applied per partition; negative events are seen but are not
entries; ``collapse_repeats`` merges consecutive events on one item; at most ``max_len`` newest entries are
kept, in event-time order; a snapshot is a copy whose ``version`` changes whenever the state does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from freshrec.position import base, offset
from freshrec.schema import EventRecord, UserSnapshot
from freshrec.sequence import EventTypes
from freshrec.state.base import StateStore, open_state_store

TYPES = EventTypes(["view", "cart", "purchase", "skip"], negative=["skip"])
VIEW, CART, PURCHASE = TYPES.code["view"], TYPES.code["cart"], TYPES.code["purchase"]

Opener = Callable[..., StateStore]

# A new backend is one entry here: its name and a function giving the URL of a fresh, empty store.
BACKENDS: dict[str, Callable[[pytest.FixtureRequest], str]] = {
    "memory": lambda request: "memory://",
    "redis": lambda request: request.getfixturevalue("empty_redis"),
}


@pytest.fixture(params=sorted(BACKENDS))
def opener(request: pytest.FixtureRequest) -> Opener:
    url = BACKENDS[request.param](request)

    def open_(max_len: int = 10, collapse_repeats: bool = True) -> StateStore:
        return open_state_store(url, types=TYPES, max_len=max_len, collapse_repeats=collapse_repeats)

    return open_


@pytest.fixture
def store(opener: Opener) -> StateStore:
    return opener()


class Feed:
    """Builds events with increasing log offsets, as the event log hands them out."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self, user: str, item: int, ts: float, type: str = "view") -> tuple[EventRecord, int]:
        self.offset += 1
        return EventRecord(self.offset, user, f"item{item}", type, ts), item


def apply(store: StateStore, events: Sequence[tuple[EventRecord, int]]) -> None:
    store.apply([e for e, _ in events], [idx for _, idx in events])


def snap(store: StateStore, user: str = "u") -> UserSnapshot:
    out = store.get(user)
    assert out is not None, f"no state for {user!r}"
    return out


def test_backend_satisfies_the_protocol(store: StateStore) -> None:
    assert isinstance(store, StateStore)


def test_get_reflects_applied_events_as_soon_as_apply_returns(store: StateStore) -> None:
    ev = Feed()
    assert store.get("u") is None and store.applied()[0] == 0
    apply(store, [ev("u", 3, 10.0), ev("u", 1, 11.0, "cart"), ev("other", 2, 12.0)])
    s = snap(store)
    assert s.items.tolist() == [3, 1]
    assert s.types.tolist() == [VIEW, CART]
    assert s.ts.tolist() == [10.0, 11.0]
    assert s.seen.tolist() == [1, 3]
    assert snap(store, "other").items.tolist() == [2]
    assert store.get("nobody") is None


def test_applied_offset_is_the_highest_offset_applied(store: StateStore) -> None:
    ev = Feed()
    first = [ev("u", 1, 1.0), ev("v", 2, 2.0)]
    apply(store, first)
    assert store.applied()[0] == 2
    apply(store, [ev("u", 3, 3.0)])
    assert store.applied()[0] == 3
    apply(store, first[:1])  # a replayed older batch does not move it back
    assert store.applied()[0] == 3


def test_events_are_applied_in_the_order_given(opener: Opener) -> None:
    ev = Feed()
    store = opener(collapse_repeats=False)
    # Equal event times: only the order given decides the sequence.
    apply(store, [ev("u", 5, 1.0), ev("u", 2, 1.0), ev("u", 9, 1.0), ev("u", 2, 1.0)])
    assert snap(store).items.tolist() == [5, 2, 9, 2]


def test_negative_events_are_seen_but_not_entries(store: StateStore) -> None:
    ev = Feed()
    apply(store, [ev("u", 4, 1.0), ev("u", 7, 2.0, "skip"), ev("u", 5, 3.0)])
    s = snap(store)
    assert s.items.tolist() == [4, 5] and s.types.tolist() == [VIEW, VIEW]
    assert s.seen.tolist() == [4, 5, 7]


def test_a_user_with_only_negative_events_has_state_with_no_entries(store: StateStore) -> None:
    ev = Feed()
    apply(store, [ev("u", 7, 1.0, "skip")])
    s = snap(store)
    assert s.items.tolist() == [] and s.seen.tolist() == [7]


def test_collapse_merges_consecutive_events_on_one_item_into_the_latest_type(opener: Opener) -> None:
    ev = Feed()
    store = opener(collapse_repeats=True)
    apply(store, [ev("u", 1, 1.0), ev("u", 1, 2.0, "cart"), ev("u", 1, 3.0, "purchase"), ev("u", 2, 4.0)])
    apply(store, [ev("u", 1, 5.0)])  # not consecutive with the first run: a new entry
    s = snap(store)
    assert s.items.tolist() == [1, 2, 1]
    assert s.types.tolist() == [PURCHASE, VIEW, VIEW]


def test_without_collapse_every_event_is_its_own_entry(opener: Opener) -> None:
    ev = Feed()
    store = opener(collapse_repeats=False)
    apply(store, [ev("u", 1, 1.0), ev("u", 1, 2.0, "cart"), ev("u", 1, 3.0, "purchase")])
    s = snap(store)
    assert s.items.tolist() == [1, 1, 1]
    assert s.types.tolist() == [VIEW, CART, PURCHASE]
    assert s.ts.tolist() == [1.0, 2.0, 3.0]


def test_sequence_keeps_at_most_max_len_newest_entries(opener: Opener) -> None:
    ev = Feed()
    store = opener(max_len=3)
    apply(store, [ev("u", i, float(i)) for i in range(1, 8)])
    s = snap(store)
    assert s.items.tolist() == [5, 6, 7] and s.ts.tolist() == [5.0, 6.0, 7.0]
    assert s.seen.tolist() == list(range(1, 8))  # exclusion remembers the whole history
    apply(store, [ev("u", 9, 0.5)])  # older than every kept entry: it is not among the newest
    assert snap(store).items.tolist() == [5, 6, 7]


def test_events_with_older_timestamps_are_inserted_in_time_order(opener: Opener) -> None:
    ev = Feed()
    store = opener(collapse_repeats=False)
    apply(store, [ev("u", 1, 10.0), ev("u", 2, 30.0)])
    apply(store, [ev("u", 3, 20.0), ev("u", 4, 5.0), ev("u", 5, 30.0)])
    s = snap(store)
    assert s.items.tolist() == [4, 1, 3, 2, 5]  # equal times (30.0) keep the order given
    assert s.ts.tolist() == [5.0, 10.0, 20.0, 30.0, 30.0]


def test_snapshot_is_a_copy(store: StateStore) -> None:
    ev = Feed()
    apply(store, [ev("u", 1, 1.0)])
    before = snap(store)
    apply(store, [ev("u", 2, 2.0), ev("u", 3, 3.0, "skip")])
    assert before.items.tolist() == [1] and before.seen.tolist() == [1] and before.ts.tolist() == [1.0]
    after = snap(store)
    for array in (after.items, after.types, after.ts, after.seen):
        array[:] = 0  # callers may scribble on their copy
    again = snap(store)
    assert again.items.tolist() == [1, 2] and again.seen.tolist() == [1, 2, 3] and again.ts.tolist() == [1.0, 2.0]


def test_version_changes_whenever_the_state_does_and_only_then(store: StateStore) -> None:
    ev = Feed()
    apply(store, [ev("u", 1, 1.0)])
    versions = [snap(store).version]
    assert snap(store).version == versions[0]  # no change, same key: derived values stay cached
    for event in (ev("u", 2, 2.0), ev("u", 2, 3.0, "purchase"), ev("u", 3, 4.0, "skip"), ev("u", 4, 0.5)):
        apply(store, [event])
        versions.append(snap(store).version)
    assert len(set(versions)) == len(versions), versions
    apply(store, [ev("other", 1, 1.0)])
    assert snap(store).version == versions[-1]  # another user's events leave this state alone


def test_version_of_a_user_recreated_after_delete_differs_from_the_deleted_state(store: StateStore) -> None:
    ev = Feed()
    apply(store, [ev("u", 1, 1.0)])
    old = snap(store)
    store.delete("u")
    apply(store, [ev("u", 2, 2.0)])
    new = snap(store)
    assert new.items.tolist() != old.items.tolist()
    assert new.version != old.version


def test_delete_removes_a_user_and_user_ids_and_len_list_users_with_state(store: StateStore) -> None:
    ev = Feed()
    assert len(store) == 0 and store.user_ids() == []
    apply(store, [ev("a", 1, 1.0), ev("b", 2, 1.0), ev("c", 3, 1.0, "skip"), ev("a", 2, 2.0)])
    assert len(store) == 3 and sorted(store.user_ids()) == ["a", "b", "c"]
    store.delete("b")
    store.delete("nobody")  # deleting an unknown user is a no-op
    assert store.get("b") is None
    assert len(store) == 2 and sorted(store.user_ids()) == ["a", "c"]
    assert snap(store, "a").items.tolist() == [1, 2]
    apply(store, [ev("b", 5, 3.0)])  # a deleted user starts again from nothing
    assert snap(store, "b").items.tolist() == [5] and snap(store, "b").seen.tolist() == [5]


def test_snapshot_arrays_are_aligned(opener: Opener) -> None:
    ev = Feed()
    store = opener(max_len=4)
    rng = np.random.default_rng(0)
    events = [
        ev("u", int(i), float(t), str(rng.choice(["view", "cart", "skip"]))) for i, t in rng.integers(1, 9, (40, 2))
    ]
    apply(store, events)
    s = snap(store)
    assert len(s.items) == len(s.types) == len(s.ts) <= 4
    assert np.all(np.diff(s.ts) >= 0)
    assert s.seen.tolist() == sorted({idx for _, idx in events})
    assert set(s.types.tolist()) <= {VIEW, CART}


def test_snapshots_name_their_user_and_get_many_matches_get(store: StateStore) -> None:
    ev = Feed()
    apply(store, [ev("a", 1, 1.0), ev("b", 2, 1.0)])
    many = store.get_many(["b", "nobody", "a"])
    assert [s.user_id if s is not None else None for s in many] == ["b", None, "a"]
    assert many[2].items.tolist() == snap(store, "a").items.tolist()


def test_followers_count_the_entries_that_came_after_each_item(store: StateStore) -> None:
    ev = Feed()
    apply(store, [ev("a", 1, 1.0), ev("a", 2, 2.0), ev("a", 9, 3.0, "skip"), ev("a", 3, 4.0), ev("b", 1, 1.0)])
    apply(store, [ev("b", 2, 2.0)])  # counted as soon as apply returns
    assert store.followers([1, 2, 3, 9, 42]) == [{2: 2.0, 3: 1.0}, {3: 1.0}, {}, {}, {}]


def test_recent_users_of_an_item_are_newest_first_and_forget_deleted_users(store: StateStore) -> None:
    ev = Feed()
    apply(store, [ev("a", 1, 1.0), ev("b", 1, 2.0), ev("c", 2, 3.0), ev("a", 1, 4.0, "skip"), ev("c", 1, 5.0)])
    assert store.recent_users([1, 2, 3], limit=10) == [["c", "b", "a"], ["c"], []]
    assert store.recent_users([1], limit=2) == [["c", "b"]]
    store.delete("b")
    assert store.recent_users([1], limit=10) == [["c", "a"]]


def test_skip_to_moves_the_applied_offset_forward_only(opener: Opener) -> None:
    store = opener()
    store.apply([EventRecord(3, "u", "a", "view", 1.0)], [1])
    store.skip_to(7)
    store.skip_to(5)
    assert store.applied()[0] == 7
    assert store.get("u").items.tolist() == [1]


def test_each_partition_has_its_own_applied_offset(opener: Opener) -> None:
    store = opener()
    assert store.applied(3) == (base(0), base(1), base(2))
    store.apply([EventRecord(offset(1, 4), "u", "a", "view", 1.0), EventRecord(2, "v", "b", "view", 2.0)], [1, 2])
    store.skip_to(offset(2, 9))
    assert store.applied(3) == (2, offset(1, 4), offset(2, 9))
    assert store.applied() == (2,)
    # an event at or below its partition's applied offset counts as applied already in a shared store;
    # one above it is applied whatever the other partitions reached
    done = store.apply([EventRecord(offset(1, 5), "u", "c", "view", 3.0)], [3])
    assert done == [0] and store.get("u").items.tolist() == [1, 3]
    assert store.applied(2) == (2, offset(1, 5))

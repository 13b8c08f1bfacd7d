from freshrec.schema import EventRecord
from freshrec.sequence import EventTypes
from freshrec.state.base import open_state_store


def test_apply_get_delete() -> None:
    store = open_state_store(
        "memory://", types=EventTypes(["view", "purchase", "skip"], ["skip"]), max_len=3, collapse_repeats=True
    )
    events = [EventRecord(i + 1, "u", f"i{i}", "view", float(i)) for i in range(5)]
    store.apply(events, [1, 2, 3, 4, 5])
    snap = store.get("u")
    assert snap is not None
    assert snap.items.tolist() == [3, 4, 5] and snap.seen.tolist() == [1, 2, 3, 4, 5]
    assert store.applied()[0] == 5 and len(store) == 1
    assert store.get("nobody") is None
    store.delete("u")
    assert store.get("u") is None


def test_snapshot_is_a_copy() -> None:
    store = open_state_store("memory://", types=EventTypes(["view"]), max_len=10, collapse_repeats=True)
    store.apply([EventRecord(1, "u", "a", "view", 1.0)], [1])
    snap = store.get("u")
    store.apply([EventRecord(2, "u", "b", "view", 2.0)], [2])
    assert snap is not None and snap.items.tolist() == [1]

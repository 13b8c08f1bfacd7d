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


def _awkward_log() -> list:
    """Events that exercise every rule of the fold: late arrivals, repeats, negatives, a retired type."""
    from freshrec.schema import EventRecord

    rows = [
        ("u", "a", "view", 10.0),
        ("u", "a", "cart", 11.0),  # a repeat: one entry with collapse_repeats
        ("u", "b", "view", 5.0),  # late: inserted before a
        ("u", "c", "skip", 12.0),  # negative: seen, never an entry
        ("u", "d", "wishlist", 13.0),  # a type the registry no longer knows: an entry of type 0
        ("v", "b", "view", 1.0),
        ("v", "b", "view", 2.0),
        ("u", "e", "purchase", 14.0),
        ("v", "a", "click", 0.5),  # late again
    ]
    return [EventRecord(n + 1, u, i, t, ts) for n, (u, i, t, ts) in enumerate(rows)]


def test_live_state_training_data_and_the_online_trainer_fold_events_the_same_way(tmp_path) -> None:
    """One rule everywhere: the sequences live state serves from, the ones the model is trained on, and the
    histories the online trainer and its gate read are the same for the same events."""
    from freshrec.catalog.sqlite import SQLiteCatalog
    from freshrec.events.sqlite import SQLiteEventLog
    from freshrec.model.data import sequences_from_log
    from freshrec.sequence import Sequences
    from freshrec.state.memory import MemoryStateStore

    events = _awkward_log()
    types = EventTypes(["view", "click", "cart", "purchase", "skip"], negative=["skip"])
    for collapse in (True, False):
        log = SQLiteEventLog(tmp_path / f"events-{collapse}.db")
        catalog = SQLiteCatalog(tmp_path / f"catalog-{collapse}.db")
        log.append(events)
        idx = catalog.internal_ids([e.item_id for e in events])
        state = MemoryStateStore(types, max_len=100, collapse_repeats=collapse)
        state.apply(events, idx)
        training = sequences_from_log(log, catalog, types, collapse_repeats=collapse)
        befores: dict[int, list[int]] = {}

        def before(j: int, seq, seen: dict[int, list[int]] = befores) -> None:
            seen[j] = [] if seq is None else seq.items.tolist()

        trainer = Sequences(types, max_len=101, collapse_repeats=collapse)
        trainer.fold(events, idx, before)
        for user in ("u", "v"):
            snap = state.get(user)
            position = training.users.index(user)
            assert snap.items.tolist() == training.items[position].tolist() == trainer.get(user).items.tolist()
            assert snap.types.tolist() == training.types[position].tolist() == trainer.get(user).types.tolist()
        # the history an event was chosen after is the sequence folded from the events before it
        for j in range(len(events)):
            earlier = MemoryStateStore(types, max_len=100, collapse_repeats=collapse)
            earlier.apply(events[:j], idx[:j])
            snap = earlier.get(events[j].user_id)
            assert befores[j] == ([] if snap is None else snap.items.tolist())
        u = state.get("u")
        names = [types.name(int(c)) for c in u.types]
        if collapse:
            assert u.items.tolist() == idx_of(catalog, "b", "a", "d", "e") and names[1] == "cart"
        else:
            assert u.items.tolist() == idx_of(catalog, "b", "a", "a", "d", "e")
        assert "unknown" in names and idx_of(catalog, "c")[0] in u.seen.tolist()
        log.close()
        catalog.close()


def idx_of(catalog, *item_ids: str) -> list[int]:
    return catalog.internal_ids(list(item_ids), create=False)

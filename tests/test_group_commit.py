"""Group commit: concurrent appends are stored and folded together, each caller gets its own results, and a
caller's bad batch fails only that caller."""

from __future__ import annotations

import threading

from freshrec.engine import Engine
from freshrec.schema import EventIn, EventRecord


def test_concurrent_appends_each_get_their_own_offsets_and_state(engine: Engine) -> None:
    acks: dict[int, list[int]] = {}
    start = threading.Barrier(8)

    def send(t: int) -> None:
        start.wait()
        for n in range(25):
            ack = engine.ingest([EventIn(user_id=f"u{t}", item_id=f"i{t}-{n}", type="view", event_id=f"{t}-{n}")])
            acks.setdefault(t, []).extend(ack.offsets)

    threads = [threading.Thread(target=send, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    offsets = [o for t in range(8) for o in acks[t]]
    assert sorted(offsets) == list(range(1, 201))  # every event stored once, offsets handed back right
    for t in range(8):
        assert acks[t] == sorted(acks[t])  # one caller's events keep their order
        logged = {e.offset: e for e in engine.event_log.user_events(f"u{t}")}
        assert [logged[o].item_id for o in acks[t]] == [f"i{t}-{n}" for n in range(25)]
        assert engine.state.get(f"u{t}").items.size == 25
    assert engine.state.applied()[0] == 200


def test_a_bad_batch_fails_only_its_caller(engine: Engine) -> None:
    gate = threading.Event()
    original = engine.event_log.append

    def slow_append(records):  # hold the first append so the next two queue up behind it
        gate.wait(30)
        return original(records)

    engine.event_log.append = slow_append  # type: ignore[method-assign]
    outcomes: dict[str, object] = {}

    def send(name: str, records: list[EventRecord]) -> None:
        try:
            outcomes[name] = engine.append_records(records)
        except Exception as exc:
            outcomes[name] = exc

    first = threading.Thread(target=send, args=("first", [EventRecord(0, "a", "x", "view", 1.0)]))
    first.start()
    while not engine._leading:  # observable: the first caller holds the turn
        pass
    bad = EventRecord(0, "b", "y", "view", 1.0, context={"weight": object()})
    good = EventRecord(0, "c", "z", "view", 1.0)
    others = [threading.Thread(target=send, args=(n, [r])) for n, r in (("bad", bad), ("good", good))]
    for th in others:
        th.start()
    while len(engine._queue) < 2:
        pass
    gate.set()
    for th in (first, *others):
        th.join(30)
    assert isinstance(outcomes["bad"], TypeError)
    assert [r.offset for r in outcomes["first"]] == [1] and not isinstance(outcomes["good"], Exception)
    assert engine.state.get("c") is not None and engine.state.get("b") is None


def test_a_deletion_waits_for_appends_queued_before_it(engine: Engine) -> None:
    engine.ingest([EventIn(user_id="gone", item_id="x", type="view")])
    gate = threading.Event()
    original = engine.event_log.append

    def slow_append(records):
        gate.wait(30)
        return original(records)

    engine.event_log.append = slow_append  # type: ignore[method-assign]
    first = threading.Thread(target=engine.append_records, args=([EventRecord(0, "other", "y", "view", 2.0)],))
    first.start()
    while not engine._leading:
        pass
    queued = threading.Thread(target=engine.append_records, args=([EventRecord(0, "gone", "z", "view", 3.0)],))
    queued.start()
    while len(engine._queue) < 1:
        pass
    removed: list[int] = []
    deletion = threading.Thread(target=lambda: removed.append(engine.delete_user("gone")))
    deletion.start()
    while len(engine._queue) < 2:
        pass
    gate.set()
    for th in (first, queued, deletion):
        th.join(30)
    assert removed == [2]  # the queued event was stored before the deletion ran, and deleted with the rest
    assert engine.state.get("gone") is None and engine.event_log.user_events("gone") == []

"""The Redis state store shared by several workers, on a real redis-server."""

from __future__ import annotations

import threading
from pathlib import Path

from freshrec.engine import build_engine
from freshrec.schema import EventIn, EventRecord
from freshrec.sequence import EventTypes
from freshrec.state.base import open_state_store
from tests.conftest import make_settings

TYPES = EventTypes(["view", "skip"], negative=["skip"])


def test_an_event_applied_by_one_worker_is_read_by_another_at_once(empty_redis: str) -> None:
    a = open_state_store(empty_redis, types=TYPES, max_len=10, collapse_repeats=True)
    b = open_state_store(empty_redis, types=TYPES, max_len=10, collapse_repeats=True)
    a.apply([EventRecord(1, "u", "x", "view", 1.0), EventRecord(2, "v", "x", "view", 2.0)], [3, 3])
    b.apply([EventRecord(3, "u", "y", "view", 3.0)], [4])
    assert a.get("u").items.tolist() == [3, 4] and b.get("u").items.tolist() == [3, 4]
    assert a.followers([3]) == [{4: 1.0}] and b.recent_users([3], 5) == [["v", "u"]]
    assert a.applied()[0] == b.applied()[0] == 3


def test_a_restarted_engine_reads_live_state_from_redis_without_replaying_the_log(
    empty_redis: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path / "data", storage={"state_url": empty_redis})
    engine = build_engine(settings, load_model=False)
    try:
        engine.ingest([EventIn(user_id="u", item_id=f"i{n}", type="view", ts=float(n)) for n in range(5)])
        before = engine.state.get("u")
    finally:
        engine.close()
    engine = build_engine(settings, load_model=False)
    try:
        after = engine.state.get("u")
        # the same state, not rebuilt: a replay would have created the user afresh, with a new version
        assert after.items.tolist() == before.items.tolist() and after.version == before.version
        assert engine.state.applied()[0] == engine.event_log.ends()[0] == 5
    finally:
        engine.close()


def test_events_already_applied_by_another_worker_are_not_folded_twice(empty_redis: str) -> None:
    a = open_state_store(empty_redis, types=TYPES, max_len=10, collapse_repeats=False)
    b = open_state_store(empty_redis, types=TYPES, max_len=10, collapse_repeats=False)
    events = [EventRecord(n, "u", f"i{n}", "view", float(n)) for n in range(1, 5)]
    a.apply(events[:2], [1, 2])
    b.apply(events, [1, 2, 3, 4])  # a catch-up from the log that overlaps what a applied
    a.apply(events[2:3], [3])  # a's own append, after b got there first
    assert a.get("u").items.tolist() == [1, 2, 3, 4] and a.followers([1]) == [{2: 1.0, 3: 1.0, 4: 1.0}]


def test_two_engines_on_one_log_and_one_redis_apply_every_event_once(empty_redis: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", storage={"state_url": empty_redis})
    engines = [build_engine(settings, load_model=False) for _ in range(2)]
    try:

        def post(w: int) -> None:
            for n in range(40):
                engines[w].ingest([EventIn(user_id="u", item_id=f"w{w}-{n}", type="view", ts=float(n * 2 + w))])

        threads = [threading.Thread(target=post, args=(w,)) for w in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for engine in engines:
            snap = engine.state.get("u")
            assert len(snap.items) == 80 and len(set(snap.items.tolist())) == 80
        assert engines[0].state.applied()[0] == engines[0].event_log.ends()[0] == 80
    finally:
        for engine in engines:
            engine.close()

"""The EventLog contract, run against every backend (SQLite always; more backends join the list)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from freshrec.events.base import EventLog, iter_events, open_event_log
from freshrec.schema import EventRecord

Opener = Callable[[], EventLog]


def _opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    opened: list[EventLog] = []
    shared = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/events.db"
    else:
        url = request.getfixturevalue("kafka_broker").url(f"events-{uuid.uuid4().hex[:12]}")
        if request.param == "kafka+redis":
            shared = request.getfixturevalue("empty_redis")

    def open_() -> EventLog:
        log = open_event_log(url, shared_url=shared)
        opened.append(log)
        return log

    yield open_
    for log in opened:
        log.close()


@pytest.fixture(params=["sqlite", "kafka"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    yield from _opener(request, tmp_path)


# The Kafka log's event-id index has two backends (in process, Redis): the guarantees about ids run on both.
@pytest.fixture(params=["sqlite", "kafka", "kafka+redis"])
def ids_opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    yield from _opener(request, tmp_path)


def ev(user: str = "u1", item: str = "i1", ts: float = 1.0, event_id: str | None = None, **kw) -> EventRecord:
    return EventRecord(0, user, item, kw.pop("type", "view"), ts, event_id=event_id, **kw)


def test_offsets_increase_and_read_returns_in_order(opener: Opener) -> None:
    log = opener()
    first = log.append([ev(item="a"), ev(item="b")])
    second = log.append([ev(item="c")])
    offsets = [r.offset for r in first + second]
    assert offsets == sorted(offsets) and len(set(offsets)) == 3 and offsets[0] >= 1
    assert [e.item_id for e in log.read(0)] == ["a", "b", "c"]
    assert [e.item_id for e in log.read(offsets[0], limit=1)] == ["b"]
    assert log.last_offset() == offsets[-1]
    assert log.count() == 3


def test_appended_events_survive_reopen_with_all_fields(opener: Opener) -> None:
    log = opener()
    log.append([ev(value=4.5, context={"device": "ios"}, event_id="e1", type="rating")])
    log.close()
    [e] = opener().read(0)
    assert (e.user_id, e.item_id, e.type, e.ts, e.value, e.event_id, e.context) == (
        "u1",
        "i1",
        "rating",
        1.0,
        4.5,
        "e1",
        {"device": "ios"},
    )


def test_duplicate_event_ids_are_acknowledged_not_stored(ids_opener: Opener) -> None:
    log = ids_opener()
    [a] = log.append([ev(event_id="x")])
    again = log.append([ev(event_id="x", item="other"), ev(event_id="y"), ev(event_id="y")])
    assert again[0].duplicate and again[0].offset == a.offset
    assert not again[1].duplicate
    assert again[2].duplicate and again[2].offset == again[1].offset
    assert log.count() == 2
    assert [e.item_id for e in log.read(0)] == ["i1", "i1"]


def test_events_without_event_id_are_never_deduplicated(ids_opener: Opener) -> None:
    log = ids_opener()
    log.append([ev(), ev()])
    assert log.count() == 2


def test_user_events_and_delete_user(opener: Opener) -> None:
    log = opener()
    log.append([ev("u1", "a"), ev("u2", "b"), ev("u1", "c")])
    assert [e.item_id for e in log.user_events("u1")] == ["a", "c"]
    assert [e.item_id for e in log.user_events("u1", limit=1)] == ["c"]
    last = log.last_offset()
    assert log.delete_user("u1") == 2
    assert log.user_events("u1") == []
    # offsets are never reused, even after the newest event was deleted
    [r] = log.append([ev("u3", "d")])
    assert r.offset > last


def test_iter_events_pages_through_everything(opener: Opener) -> None:
    log = opener()
    log.append([ev(item=str(i)) for i in range(25)])
    assert [e.item_id for e in iter_events(log, page=7)] == [str(i) for i in range(25)]


def test_consumer_groups_commit_offsets(opener: Opener) -> None:
    log = opener()
    log.append([ev(item=str(i)) for i in range(5)])
    assert log.committed("trainer") is None
    log.commit("trainer", 3)
    log.commit("ingest", 5)
    log.close()
    reopened = opener()
    assert (reopened.committed("trainer"), reopened.committed("ingest")) == (3, 5)
    assert [e.item_id for e in reopened.read(reopened.committed("trainer"))] == ["3", "4"]


def test_an_erased_user_who_comes_back_starts_afresh(opener: Opener) -> None:
    log = opener()
    log.append([ev("u1", "a"), ev("u2", "b")])
    assert log.delete_user("u1") == 1
    log.append([ev("u1", "c")])
    assert [e.item_id for e in log.user_events("u1")] == ["c"]
    assert [e.item_id for e in log.read(0)] == ["b", "c"]
    assert log.count() == 2
    assert opener().delete_user("nobody") == 0


def test_reads_skip_a_window_of_erased_events(opener: Opener) -> None:
    log = opener()
    log.append([ev("gone", str(i)) for i in range(10)] + [ev("kept", "x")])
    log.delete_user("gone")
    assert [e.item_id for e in log.read(0, limit=3)] == ["x"]
    assert [e.item_id for e in iter_events(log, page=4)] == ["x"]


def test_failed_batch_stores_nothing(opener: Opener) -> None:
    log = opener()
    log.append([ev(item="kept")])
    with pytest.raises(TypeError):
        log.append([ev(item="a"), ev(item="b", context={"bad": object()})])
    assert [e.item_id for e in log.read(0)] == ["kept"]


def test_unknown_scheme_is_rejected() -> None:
    with pytest.raises(ValueError, match="scheme"):
        open_event_log("pulsar://broker/events")
    with pytest.raises(ValueError, match="TOPIC"):
        open_event_log("kafka://broker:9092")

"""The EventLog contract, run against every backend: SQLite, Kafka with one partition and with three."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from freshrec.errors import Conflict
from freshrec.events.base import EventLog, iter_events, open_event_log
from freshrec.events.identity import id_digest
from freshrec.position import advance, base, local, partition_of, start
from freshrec.schema import EventRecord

Opener = Callable[[], EventLog]


def _opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    opened: list[EventLog] = []
    shared = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/events.db"
    else:
        url = request.getfixturevalue("kafka_broker").url(f"events-{uuid.uuid4().hex[:12]}")
        if request.param == "kafka-3":
            url += "?partitions=3"
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


# The guarantees that depend on how events spread over partitions also run on a topic with three.
@pytest.fixture(params=["sqlite", "kafka", "kafka-3"])
def wide_opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    yield from _opener(request, tmp_path)


# The Kafka log's event-id index has two backends (in process, Redis): the guarantees about ids run on both.
@pytest.fixture(params=["sqlite", "kafka", "kafka+redis"])
def ids_opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    yield from _opener(request, tmp_path)


def ev(user: str = "u1", item: str = "i1", ts: float = 1.0, event_id: str | None = None, **kw) -> EventRecord:
    return EventRecord(0, user, item, kw.pop("type", "view"), ts, event_id=event_id, **kw)


def items(log: EventLog, after=None) -> list[str]:
    return [e.item_id for e in iter_events(log, after)]


def test_offsets_increase_and_read_returns_in_order(wide_opener: Opener) -> None:
    opener = wide_opener
    log = opener()
    first = log.append([ev(item="a"), ev(item="b")])
    second = log.append([ev(item="c")])
    offsets = [r.offset for r in first + second]
    assert offsets == sorted(offsets) and len(set(offsets)) == 3 and local(offsets[0]) >= 1
    p = partition_of(offsets[0])  # one user: one partition
    assert [e.item_id for e in log.read(base(p))] == items(log) == ["a", "b", "c"]
    assert [e.item_id for e in log.read(offsets[0], limit=1)] == ["b"]
    assert len(log.ends()) == log.partitions and log.ends()[p] == offsets[-1]
    assert log.count() == 3


def test_each_users_events_stay_in_order_in_one_partition(wide_opener: Opener) -> None:
    opener = wide_opener
    log = opener()
    users = [f"user-{n}" for n in range(12)]
    results = log.append([ev(u, f"{u}/{k}") for k in range(3) for u in users])
    offsets = [r.offset for r in results]
    assert len(set(offsets)) == len(offsets)
    owners = [u for k in range(3) for u in users]
    for u in users:
        mine = [o for o, owner in zip(offsets, owners, strict=True) if owner == u]
        assert mine == sorted(mine) and len({partition_of(o) for o in mine}) == 1
    assert [e.item_id for e in log.user_events(users[0])] == [f"{users[0]}/{k}" for k in range(3)]
    everything = list(iter_events(log))
    assert sorted(e.offset for e in everything) == sorted(offsets)
    for u in users:  # in log order, each user's events come in the order they were appended
        assert [e.item_id for e in everything if e.user_id == u] == [f"{u}/{k}" for k in range(3)]
    ends = log.ends()
    for p in range(log.partitions):
        mine = [o for o in offsets if partition_of(o) == p]
        assert ends[p] == (max(mine) if mine else base(p))
    if log.partitions > 1:  # keyed by user id: twelve users spread over the partitions
        assert len({partition_of(o) for o in offsets}) > 1


def test_appended_events_survive_reopen_with_all_fields(opener: Opener) -> None:
    log = opener()
    log.append([ev(value=4.5, context={"device": "ios"}, event_id="e1", type="rating")])
    log.close()
    [e] = iter_events(opener())
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
    again = log.append([ev(event_id="x", ts=9.0), ev(event_id="y"), ev(event_id="y")])
    assert again[0].duplicate and again[0].offset == a.offset  # a retry may carry another timestamp
    assert not again[1].duplicate
    assert again[2].duplicate and again[2].offset == again[1].offset
    assert log.count() == 2
    assert items(log) == ["i1", "i1"]


def test_another_event_under_a_stored_event_id_is_a_conflict(ids_opener: Opener) -> None:
    log = ids_opener()
    log.append([ev(event_id="x")])
    with pytest.raises(Conflict, match="'x'"):
        log.append([ev(event_id="fresh"), ev(event_id="x", item="other")])
    with pytest.raises(Conflict, match="'z'"):
        log.append([ev(event_id="z"), ev(event_id="z", type="purchase")])
    assert log.count() == 1  # nothing of either batch
    assert [r.duplicate for r in log.append([ev(event_id="fresh"), ev(event_id="z")])] == [False, False]


def test_an_erased_users_events_sent_again_stay_erased(ids_opener: Opener) -> None:
    log = ids_opener()
    first = log.append([ev("gone", "a", event_id="g-1"), ev("gone", "b", event_id="g-2"), ev("kept", "c")])
    assert log.delete_user("gone") == 2
    again = log.append([ev("gone", "a", event_id="g-1"), ev("gone", "b", event_id="g-2")])
    assert [(r.offset, r.duplicate) for r in again] == [(first[0].offset, True), (first[1].offset, True)]
    assert log.user_events("gone") == [] and log.count() == 1
    assert ids_opener().append([ev("gone", "a", event_id="g-1")])[0].duplicate  # after a restart too
    erasures = log.erasures()
    assert [d for _, d in erasures] == [id_digest("gone")] and log.erasures(erasures[-1][0]) == []


def test_events_without_event_id_are_never_deduplicated(ids_opener: Opener) -> None:
    log = ids_opener()
    log.append([ev(), ev()])
    assert log.count() == 2


def test_user_events_and_delete_user(opener: Opener) -> None:
    log = opener()
    log.append([ev("u1", "a"), ev("u2", "b"), ev("u1", "c")])
    assert [e.item_id for e in log.user_events("u1")] == ["a", "c"]
    assert [e.item_id for e in log.user_events("u1", limit=1)] == ["c"]
    ends = log.ends()
    assert log.delete_user("u1") == 2
    assert log.user_events("u1") == []
    # offsets are never reused, even after the newest event was deleted
    [r] = log.append([ev("u1", "d")])
    assert r.offset > ends[partition_of(r.offset)]


def test_iter_events_pages_through_everything(opener: Opener) -> None:
    log = opener()
    log.append([ev(item=str(i)) for i in range(25)])
    assert [e.item_id for e in iter_events(log, page=7)] == [str(i) for i in range(25)]


def test_consumer_groups_commit_offsets(wide_opener: Opener) -> None:
    opener = wide_opener
    log = opener()
    offsets = [r.offset for r in log.append([ev(f"u{i}", str(i)) for i in range(5)])]
    assert log.committed("trainer") is None
    trainer = advance(start(log.partitions), offsets[:3])
    log.commit("trainer", trainer)
    log.commit("ingest", log.ends())
    log.close()
    reopened = opener()
    assert (reopened.committed("trainer"), reopened.committed("ingest")) == (trainer, reopened.ends())
    assert sorted(items(reopened, reopened.committed("trainer"))) == ["3", "4"]


def test_an_erased_user_who_comes_back_starts_afresh(wide_opener: Opener) -> None:
    opener = wide_opener
    log = opener()
    log.append([ev("u1", "a"), ev("u2", "b")])
    assert log.delete_user("u1") == 1
    log.append([ev("u1", "c")])
    assert [e.item_id for e in log.user_events("u1")] == ["c"]
    assert sorted(items(log)) == ["b", "c"]
    assert log.count() == 2
    assert opener().delete_user("nobody") == 0


def test_reads_skip_a_window_of_erased_events(wide_opener: Opener) -> None:
    opener = wide_opener
    log = opener()
    results = log.append([ev("gone", str(i)) for i in range(10)] + [ev("kept", "x")])
    log.delete_user("gone")
    # with one partition (or "gone" and "kept" in one) the first ten offsets read are erased events
    assert [e.item_id for e in log.read(base(partition_of(results[-1].offset)), limit=3)] == ["x"]
    assert [e.item_id for e in iter_events(log, page=4)] == ["x"]


def test_failed_batch_stores_nothing(opener: Opener) -> None:
    log = opener()
    log.append([ev(item="kept")])
    with pytest.raises(TypeError):
        log.append([ev(item="a"), ev(item="b", context={"bad": object()})])
    assert items(log) == ["kept"]


def test_unknown_scheme_is_rejected() -> None:
    with pytest.raises(ValueError, match="scheme"):
        open_event_log("pulsar://broker/events")
    with pytest.raises(ValueError, match="TOPIC"):
        open_event_log("kafka://broker:9092")

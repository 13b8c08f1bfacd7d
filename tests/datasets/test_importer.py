from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from freshrec.datasets.importer import import_file
from freshrec.engine import Engine
from freshrec.errors import InvalidInput
from tests.conftest import SHARED_DATA


def test_csv_with_mapping_and_iso_times(engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "shop.csv"
    f.write_text(
        "customer,sku,action,when\nc1,s1,view,2024-05-01T10:00:00+00:00\nc1,s2,purchase,2024-05-01T10:05:00+00:00\n"
    )
    report = import_file(
        engine, f, mapping={"user_id": "customer", "item_id": "sku", "type": "action", "ts": "when"}, progress=False
    )
    assert (report.stored, report.format) == (2, "csv")
    seq = engine.user_state("c1").sequence
    assert [(s.item_id, s.type) for s in seq] == [("s1", "view"), ("s2", "purchase")]
    assert seq[0].ts == 1714557600.0


def test_reimport_is_idempotent(engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "u.data"
    f.write_text("1\t10\t4\t100\n1\t11\t5\t101\n2\t10\t3\t102\n")
    assert import_file(engine, f, progress=False).stored == 3
    again = import_file(engine, f, progress=False)
    assert (again.stored, again.duplicates) == (0, 3)
    assert engine.event_log.count() == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1\t10\t4\t100\n1\t11\t5\n", "u.data:2: expected 4 fields"),
        ("1\t10\t4\t100\n1\t11\tfive\t101\n", "u.data:2"),
    ],
)
def test_a_bad_line_stops_the_import_and_stores_nothing(
    engine: Engine, tmp_path: Path, content: str, message: str
) -> None:
    f = tmp_path / "u.data"
    f.write_text(content)
    with pytest.raises(InvalidInput, match=message):
        import_file(engine, f, progress=False)
    assert engine.event_log.count() == 0 and len(engine.catalog) == 0


def test_unknown_types_and_missing_columns(engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "e.csv"
    f.write_text("user_id,item_id,type\nu,i,teleport\n")
    with pytest.raises(InvalidInput, match="unknown event type 'teleport'"):
        import_file(engine, f, progress=False)
    g = tmp_path / "g.csv"
    g.write_text("who,what\nu,i\n")
    with pytest.raises(InvalidInput, match="--map"):
        import_file(engine, g, progress=False)
    assert engine.event_log.count() == 0


@pytest.mark.skipif(not (SHARED_DATA / "ml-100k" / "u.data").is_file(), reason="shared MovieLens data not present")
def test_real_movielens_100k(engine: Engine) -> None:
    items = import_file(engine, SHARED_DATA / "ml-100k" / "u.item", progress=False)
    events = import_file(engine, SHARED_DATA / "ml-100k" / "u.data", progress=False)
    assert (items.stored, events.stored) == (1682, 100_000)
    assert len(engine.catalog) == 1682 and len(engine.state) == 943
    assert engine.catalog.get(["1"])[0].title == "Toy Story (1995)"
    # time-ordered sequences even though u.data is not sorted by time
    seq = engine.user_state("196").sequence
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(seq))


@pytest.mark.skipif(not (SHARED_DATA / "ml-latest-small" / "movies.csv").is_file(), reason="shared data absent")
def test_real_movielens_latest_items_with_tags(engine: Engine) -> None:
    report = import_file(engine, SHARED_DATA / "ml-latest-small" / "movies.csv", progress=False)
    assert report.stored == 9742
    [toy] = engine.catalog.get(["1"])
    assert toy is not None and toy.categories[:2] == ["Adventure", "Animation"] and toy.text

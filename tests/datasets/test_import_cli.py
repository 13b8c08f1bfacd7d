"""`freshrec import` on real files and a real data directory, driven through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from freshrec.cli import app
from freshrec.config import load_settings
from freshrec.engine import build_engine

runner = CliRunner()


def stored(data_dir: Path) -> tuple[int, int]:
    """(events, catalogue items) held by a data directory; events add the items they name."""
    engine = build_engine(load_settings(storage={"data_dir": data_dir}), load_model=False)
    try:
        return engine.event_log.count(), len(engine.catalog)
    finally:
        engine.close()


def snapshot(data_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(data_dir)): p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file()}


def test_headerless_csv_is_refused_then_imported_with_columns(tmp_path: Path) -> None:
    data = tmp_path / "data"
    f = tmp_path / "views.csv"
    f.write_text("1,10,1700000000\n1,11,1700000100\n2,10,1700000200\n")
    r = runner.invoke(app, ["--data-dir", str(data), "import", str(f), "--type", "view"])
    assert r.exit_code == 2, r.output
    assert "views.csv:1: line 1 (1, 10, 1700000000) looks like data" in r.output
    assert "--no-header --columns user_id,item_id,ts" in r.output and "Traceback" not in r.output
    assert not data.exists()
    r = runner.invoke(
        app,
        ["--data-dir", str(data), "import", str(f), "--no-header", "--columns", "user_id,item_id,ts", "--type", "view"],
    )
    assert r.exit_code == 0 and "imported 3 events" in r.output, r.output
    assert stored(data) == (3, 2)


def test_space_and_tab_separated_headerless_files(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    spaced = tmp_path / "spaced.txt"
    spaced.write_text("u1  i1 1700000000\nu1 i2   1700000100\nu2 i1 1700000200\n")
    r = runner.invoke(app, [*data, "import", str(spaced), "--columns", "user_id,item_id,ts", "--type", "view"])
    assert r.exit_code == 0 and "imported 3 events" in r.output, r.output
    tabbed = tmp_path / "tabbed.tsv"
    tabbed.write_text("u3\ti1\t1700000300\nu3\ti3\t1700000400\n")
    maps = ["--map", "user_id=who", "--map", "item_id=what", "--map", "ts=when"]
    r = runner.invoke(
        app, [*data, "import", str(tabbed), "--columns", "who,what,when", "--delimiter", "tab", "--type", "view", *maps]
    )
    assert r.exit_code == 0 and "imported 2 events" in r.output, r.output
    assert stored(tmp_path / "data") == (5, 3)


def test_generated_items_need_no_kind(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    shop = tmp_path / "shop"
    r = runner.invoke(app, ["generate", str(shop), "--users", "60", "--items", "40", "--seed", "1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*data, "import", str(shop / "items.jsonl")])
    assert r.exit_code == 0 and "imported 40 items" in r.output and "jsonl-items" in r.output, r.output
    r = runner.invoke(app, [*data, "import", str(shop / "events.jsonl")])
    assert r.exit_code == 0 and "events from" in r.output and "(jsonl;" in r.output, r.output
    events = sum(1 for line in (shop / "events.jsonl").read_text().splitlines() if line.strip())
    assert stored(tmp_path / "data") == (events, 40)
    engine = build_engine(load_settings(storage={"data_dir": tmp_path / "data"}), load_model=False)
    try:
        first = json.loads((shop / "items.jsonl").read_text().splitlines()[0])
        [item] = engine.catalog.get([first["item_id"]])
        assert item is not None and item.attributes == first["attributes"]
    finally:
        engine.close()


def test_list_formats_needs_no_path(tmp_path: Path) -> None:
    r = runner.invoke(app, ["--data-dir", str(tmp_path / "data"), "import", "--list-formats"])
    assert r.exit_code == 0 and "ml-100k" in r.output and "csv-items" in r.output, r.output
    r = runner.invoke(app, ["--data-dir", str(tmp_path / "data"), "import"])
    assert r.exit_code == 2 and "give the PATH of a file to import" in r.output, r.output
    assert not (tmp_path / "data").exists()


def test_a_failed_import_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bad = tmp_path / "events.csv"
    bad.write_text("user_id,item_id,type\nu1,i1,view\nu1,i2,teleport\n")
    r = runner.invoke(app, ["--data-dir", str(data), "import", str(bad)])
    assert r.exit_code == 2 and "unknown event type 'teleport'" in r.output, r.output
    assert not data.exists()
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("user_id,item_id\nu1,i1\nu1\n")
    r = runner.invoke(app, ["--data-dir", str(data), "import", str(ragged)])
    assert r.exit_code == 2 and "ragged.csv:3: 1 fields, but the header has 2" in r.output, r.output
    assert not data.exists()


def test_a_failed_import_leaves_a_data_directory_unchanged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    good = tmp_path / "good.csv"
    good.write_text("user_id,item_id,type\nu1,i1,view\n")
    assert runner.invoke(app, ["--data-dir", str(data), "import", str(good)]).exit_code == 0
    before = snapshot(data)
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,type\nu2,i1,view\nu2,i2,teleport\n")
    r = runner.invoke(app, ["--data-dir", str(data), "import", str(bad)])
    assert r.exit_code == 2 and "unknown event type 'teleport'" in r.output, r.output
    assert snapshot(data) == before
    assert stored(data) == (1, 1)


def test_layout_option_errors_are_one_line(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    f = tmp_path / "views.csv"
    f.write_text("user_id,item_id\nu1,i1\n")
    r = runner.invoke(app, [*data, "import", str(f), "--header", "--columns", "a,b"])
    assert r.exit_code == 2 and "cannot go with --header" in r.output, r.output
    r = runner.invoke(app, [*data, "import", str(f), "--delimiter", "::"])
    assert r.exit_code == 2 and "--delimiter '::': give one character" in r.output, r.output
    r = runner.invoke(app, [*data, "import", str(f), "--columns", "user_id,item_id"])
    assert r.exit_code == 2 and "looks like a header, but --columns says the file has none" in r.output, r.output
    assert not (tmp_path / "data").exists()

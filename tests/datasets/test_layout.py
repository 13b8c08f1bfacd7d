"""Delimited files without a header, delimiters, and events-vs-items detection, on files written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from freshrec.config import EventSettings
from freshrec.datasets.formats import detect_format
from freshrec.datasets.importer import import_file, read_rows, store_file, validate_file
from freshrec.datasets.tabular import Layout, kind_from_columns, parse_columns, parse_delimiter, sniff_delimiter
from freshrec.engine import Engine
from freshrec.errors import InvalidInput

COLUMNS = Layout(columns=("user_id", "item_id", "ts"))
HEADERLESS = "1,10,1700000000\n1,11,1700000100\n2,10,1700000200\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_headerless_csv_is_refused_and_nothing_is_stored(engine: Engine, tmp_path: Path) -> None:
    f = write(tmp_path / "views.csv", HEADERLESS)
    with pytest.raises(InvalidInput, match=r"views\.csv:1: line 1 \(1, 10, 1700000000\) looks like data") as err:
        import_file(engine, f, progress=False)
    assert "--no-header --columns user_id,item_id,ts" in str(err.value) and "\n" not in str(err.value)
    # mapping columns to the first row's values is how its loss used to go unnoticed
    with pytest.raises(InvalidInput, match="looks like data"):
        import_file(engine, f, mapping={"user_id": "1", "item_id": "10"}, progress=False)
    assert engine.event_log.count() == 0


def test_a_headerless_csv_imports_every_row_with_columns(engine: Engine, tmp_path: Path) -> None:
    f = write(tmp_path / "views.csv", HEADERLESS)
    report = import_file(engine, f, layout=COLUMNS, default_type="view", progress=False)
    assert (report.format, report.kind, report.rows, report.stored) == ("csv", "events", 3, 3)
    assert engine.event_log.count() == 3
    assert [(s.item_id, s.ts) for s in engine.user_state("1").sequence] == [("10", 1700000000.0), ("11", 1700000100.0)]


def test_no_header_without_columns_names_fields_by_position(engine: Engine, tmp_path: Path) -> None:
    f = write(tmp_path / "views.csv", HEADERLESS)
    with pytest.raises(InvalidInput, match=r"among \['1', '2', '3'\]; map them with --map"):
        import_file(engine, f, layout=Layout(header=False), progress=False)
    report = import_file(
        engine,
        f,
        layout=Layout(header=False),
        mapping={"user_id": "1", "item_id": "2", "ts": "3"},
        default_type="view",
        progress=False,
    )
    assert report.stored == 3 and engine.event_log.count() == 3


def test_string_ids_in_line_one_are_not_taken_for_a_header(tmp_path: Path) -> None:
    f = write(tmp_path / "pairs.csv", "alice,book1\nbob,book2\n")
    with pytest.raises(InvalidInput, match="none of its fields is a known column name"):
        read_rows(f, progress=False)
    _, rows = read_rows(f, layout=Layout(columns=("user", "item")), progress=False)
    assert [(e.user_id, e.item_id) for e in rows] == [("alice", "book1"), ("bob", "book2")]
    # naming line 1's columns in --map says it is a header
    _, rows = read_rows(f, mapping={"user_id": "alice", "item_id": "book1"}, progress=False)
    assert [(e.user_id, e.item_id) for e in rows] == [("bob", "book2")]


@pytest.mark.parametrize(
    "text",
    [
        "1 10 1700000000\n1 11 1700000100\n2 10 1700000200\n",
        "1   10  1700000000\n  1 11\t1700000100  \n\n2\t\t10 1700000200\n",
    ],
    ids=["single-spaces", "runs-of-blanks"],
)
def test_space_separated_files(engine: Engine, tmp_path: Path, text: str) -> None:
    f = write(tmp_path / "views.txt", text)
    with pytest.raises(InvalidInput, match="looks like data"):
        import_file(engine, f, progress=False)
    sniffed = import_file(engine, f, layout=COLUMNS, default_type="view", progress=False)
    assert (sniffed.rows, sniffed.stored) == (3, 3)
    layout = Layout.from_options(columns="user_id,item_id,ts", delimiter=" ")
    given = import_file(engine, f, layout=layout, default_type="view", progress=False)
    assert (given.rows, given.stored, given.duplicates) == (3, 0, 3)
    assert engine.event_log.count() == 3
    assert [s.item_id for s in engine.user_state("1").sequence] == ["10", "11"]


@pytest.mark.parametrize("delimiter", [None, "tab", "\\t", "\t"])
def test_tab_separated_files(engine: Engine, tmp_path: Path, delimiter: str | None) -> None:
    # three fields, so not the four-field MovieLens u.data layout
    f = write(tmp_path / "views.tsv", "u1\tHat, red\t1700000000\nu1\tScarf\t1700000100\nu2\tHat, red\t1700000200\n")
    layout = Layout.from_options(columns="user,item,when", delimiter=delimiter)
    report = import_file(engine, f, layout=layout, mapping={"ts": "when"}, default_type="view", progress=False)
    assert (report.rows, report.stored) == (3, 3)
    assert [s.item_id for s in engine.user_state("u1").sequence] == ["Hat, red", "Scarf"]


def test_layout_mistakes_are_clear_errors(tmp_path: Path) -> None:
    headed = write(tmp_path / "headed.csv", "user_id,item_id,ts\nu,i,1\n")
    with pytest.raises(InvalidInput, match=r"line 1 \(user_id, item_id, ts\) looks like a header, but --columns"):
        read_rows(headed, layout=COLUMNS, progress=False)
    _, rows = read_rows(
        headed, layout=Layout(header=False, columns=("a", "b", "c")), mapping={"user_id": "a", "item_id": "b"}
    )
    assert [e.user_id for e in rows] == ["user_id", "u"]
    with pytest.raises(InvalidInput, match="cannot go with --header"):
        Layout(header=True, columns=("user_id", "item_id"))
    with pytest.raises(InvalidInput, match=r"views\.csv:2: 2 fields, but --columns names 3"):
        read_rows(write(tmp_path / "views.csv", "u,i,1\nu,i\n"), layout=COLUMNS, progress=False)
    with pytest.raises(InvalidInput, match=r"ragged\.csv:3: 2 fields, but the header has 3"):
        read_rows(write(tmp_path / "ragged.csv", "user_id,item_id,ts\nu,i,1\nu,i\n"), progress=False)
    with pytest.raises(InvalidInput, match="apply to delimited text files, not JSON lines"):
        read_rows(write(tmp_path / "e.jsonl", '{"user_id": "u", "item_id": "i"}\n'), layout=COLUMNS, progress=False)
    with pytest.raises(InvalidInput, match="apply to the csv and csv-items formats, not ml-100k"):
        read_rows(write(tmp_path / "u.data", "1\t2\t3\t4\n"), fmt="ml-100k", layout=COLUMNS, progress=False)
    with pytest.raises(InvalidInput, match="give one character"):
        parse_delimiter("::")
    with pytest.raises(InvalidInput, match="item_id named twice"):
        parse_columns("user_id,item_id,item_id")
    with pytest.raises(InvalidInput, match="expected comma-separated names"):
        parse_columns("user_id,,ts")
    with pytest.raises(InvalidInput, match="no rows found"):
        read_rows(write(tmp_path / "empty.csv", "\n\n"), progress=False)


def test_a_numeric_header_cell_needs_header(tmp_path: Path) -> None:
    f = write(tmp_path / "items.csv", "item_id,title,2024\na,Hat,3\n")
    with pytest.raises(InvalidInput, match=r"'2024' is a value, not a column name.*add --header"):
        read_rows(f, progress=False)
    fmt, [item] = read_rows(f, layout=Layout(header=True), progress=False)
    assert fmt.name == "csv-items" and item.attributes == {"2024": 3.0}


def test_sniffed_delimiters_and_byte_order_mark(tmp_path: Path) -> None:
    assert sniff_delimiter("user_id,item_id\nu,i\n") == ","
    assert sniff_delimiter("user_id\titem_id\nu\tHat, red\n") == "\t"
    assert sniff_delimiter("a|b|c\n1|2|3\n") == "|"
    assert sniff_delimiter("user_id item_id\nu  i\n") == " "
    assert sniff_delimiter("a,b\n1,2\n3,4,", complete=False) == ","
    f = tmp_path / "excel.csv"
    f.write_bytes("\ufeffUserId;ItemId\nu1;i1\n".encode())
    fmt, [e] = read_rows(f, progress=False)
    assert (fmt.name, e.user_id, e.item_id) == ("csv", "u1", "i1")


@pytest.mark.parametrize(
    ("columns", "mapping", "kind"),
    [
        (["item_id", "title", "text", "categories", "attributes", "available"], {}, "items"),
        (["user_id", "item_id", "type", "ts", "event_id"], {}, "events"),
        (["reviewerID", "asin", "overall", "summary"], {}, "events"),
        (["sku", "price"], {}, "items"),
        (["movieId", "genres"], {}, "items"),
        (["item_id", "timestamp"], {}, "events"),
        (["id", "headline"], {"title": "headline"}, "items"),
        (["session", "product_id"], {"user_id": "session"}, "events"),
        (["who", "what"], {}, "events"),
    ],
)
def test_kind_from_columns(columns: list[str], mapping: dict[str, str], kind: str) -> None:
    assert kind_from_columns(columns, mapping) == kind


def test_generated_items_are_detected_as_items(tmp_path: Path) -> None:
    f = write(
        tmp_path / "items.jsonl",
        '{"item_id":"p1","title":"Hat","text":"warm","categories":["hats"],"attributes":{"price":12.5},'
        '"available":true}\n{"item_id":"p2","title":null,"text":null,"categories":[],"attributes":{},'
        '"available":false}\n',
    )
    assert detect_format(f).name == "jsonl-items"
    fmt, items = read_rows(f, progress=False)
    assert fmt.kind == "items" and [it.item_id for it in items] == ["p1", "p2"]
    assert items[0].attributes == {"price": 12.5} and items[0].categories == ["hats"] and not items[1].available
    headerless = write(tmp_path / "items.txt", "p1 Hat\np2 Scarf\n")
    assert detect_format(headerless, layout=Layout(columns=("item_id", "title"))).name == "csv-items"


def test_validate_checks_event_types_without_an_engine(tmp_path: Path) -> None:
    f = write(tmp_path / "e.csv", "user_id,item_id,type\nu,i,view\nu,j,teleport\n")
    with pytest.raises(InvalidInput, match=r"events\[1\]\.type: unknown event type 'teleport'"):
        validate_file(f, progress=False)
    validated = validate_file(f, EventSettings(custom_types=["teleport"]), progress=False)
    assert validated.rows == 2 and validated.format.name == "csv"


def test_store_rechecks_rows_validated_for_other_settings(engine: Engine, tmp_path: Path) -> None:
    f = write(tmp_path / "e.csv", "user_id,item_id,type\nu,i,view\nu,j,teleport\n")
    validated = validate_file(f, EventSettings(custom_types=["teleport"]), progress=False)
    with pytest.raises(InvalidInput, match="unknown event type 'teleport'"):
        store_file(engine, validated, progress=False)
    assert engine.event_log.count() == 0

"""Generic CSV and JSON-lines readers for events and items, with a column mapping.

The mapping names which source column feeds each field (``{"user_id": "userId", ...}``); fields left out
are found by common names (``userId``, ``reviewerID``, ``asin``, ``timestamp``, ``rating``...), exactly
or else ignoring case. Files may be plain, ``.gz``, or a ``.zip`` holding one file (e.g. the Amazon
review dumps).

Delimited text ("CSV") files are read by a :class:`Layout`:

* the delimiter is given, or it is the first of ``,`` tab ``;`` ``|`` space that splits every sampled
  row into the same number (two or more) of fields; a space delimiter means runs of spaces and tabs;
* line 1 is a header unless the layout says otherwise. When the layout says nothing, a line 1 that
  looks like data (it holds a number or a date, or none of its fields is a known column name or a
  ``--map`` column) is refused rather than silently used as a header, since that would lose a row;
* ``columns`` names the fields of a file without a header row, which then map like header names;
  without ``columns`` a headerless file's fields are named ``1``, ``2``, ``3``...;
* every row must have as many fields as the header (or ``columns``).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import ValidationError

from freshrec.errors import InvalidInput
from freshrec.schema import EventIn, ItemIn, format_validation_error

EVENT_ALIASES: dict[str, tuple[str, ...]] = {
    "user_id": ("user_id", "userId", "userid", "user", "uid", "reviewerID", "visitorid", "customer_id"),
    "item_id": ("item_id", "itemId", "itemid", "movieId", "movie_id", "item", "product_id", "asin", "sku"),
    "type": ("type", "event_type", "event", "action"),
    "ts": ("ts", "timestamp", "time", "unixReviewTime", "event_time", "datetime"),
    "value": ("value", "rating", "overall", "score"),
    "event_id": ("event_id", "eventId"),
}
ITEM_ALIASES: dict[str, tuple[str, ...]] = {
    "item_id": EVENT_ALIASES["item_id"],
    "title": ("title", "name", "product_title"),
    "text": ("text", "description", "desc", "body"),
    "categories": ("categories", "category", "genres", "tags"),
    "available": ("available", "in_stock"),
}
#: Every column name some field is found by, lower-cased: what a header row is expected to hold.
KNOWN_COLUMNS = frozenset(n.lower() for names in (*EVENT_ALIASES.values(), *ITEM_ALIASES.values()) for n in names)
#: Delimiters tried, in order of preference, when none is given.
SNIFFED_DELIMITERS = (",", "\t", ";", "|", " ")
_DELIMITER_NAMES = {
    "tab": "\t",
    "\\t": "\t",
    "space": " ",
    "whitespace": " ",
    "comma": ",",
    "semicolon": ";",
    "pipe": "|",
}
_SAMPLE_CHARS = 65536
_SAMPLE_ROWS = 100
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}.*)?$")
LAYOUT_OPTIONS = "--header, --no-header, --columns and --delimiter"


def parse_delimiter(text: str) -> str:
    """A delimiter from its command-line spelling; ``" "`` stands for runs of spaces and tabs.

    Examples
    --------
    >>> parse_delimiter("tab"), parse_delimiter("\\\\t"), parse_delimiter("whitespace"), parse_delimiter(";")
    ('\\t', '\\t', ' ', ';')
    """
    if text in _DELIMITER_NAMES:
        return _DELIMITER_NAMES[text]
    if text.lower() in _DELIMITER_NAMES:
        return _DELIMITER_NAMES[text.lower()]
    if len(text) == 1 and text not in ('"', "\r", "\n"):
        return text
    if text.strip() == "" and text:
        return " "
    raise InvalidInput(
        f"--delimiter {text!r}: give one character, 'tab' (or '\\t'), or 'space' (runs of spaces and tabs)"
    )


def parse_columns(text: str) -> tuple[str, ...]:
    """Column names from a comma-separated list: non-empty and distinct.

    Examples
    --------
    >>> parse_columns("user_id, item_id,ts")
    ('user_id', 'item_id', 'ts')
    """
    names = tuple(n.strip() for n in text.split(","))
    if not names or any(not n for n in names):
        raise InvalidInput(f"--columns {text!r}: expected comma-separated names, e.g. user_id,item_id,ts")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidInput(f"--columns {text!r}: {', '.join(twice)} named twice; every field needs its own name")
    return names


@dataclass(frozen=True)
class Layout:
    """How a delimited text file is laid out; the defaults detect everything.

    Parameters
    ----------
    header
        ``True``: line 1 is a header. ``False``: there is none. ``None``: line 1 is a header unless it
        looks like data, which is refused (see the module docstring).
    columns
        Names of the fields of a file without a header row, in order; implies ``header=False`` unless
        ``header`` is ``None``, in which case a line 1 that looks like a header is refused.
    delimiter
        One character; ``" "`` means runs of spaces and tabs. ``None``: sniffed.

    Examples
    --------
    >>> Layout.from_options(columns="user_id,item_id,ts", delimiter="tab")
    Layout(header=None, columns=('user_id', 'item_id', 'ts'), delimiter='\\t')
    >>> Layout().is_default
    True
    """

    header: bool | None = None
    columns: tuple[str, ...] | None = None
    delimiter: str | None = None

    def __post_init__(self) -> None:
        if self.header and self.columns:
            raise InvalidInput(
                "--columns names the fields of a file without a header row, so it cannot go with --header; "
                "to rename a header's columns use --map FIELD=COLUMN"
            )

    @classmethod
    def from_options(
        cls, header: bool | None = None, columns: str | None = None, delimiter: str | None = None
    ) -> Layout:
        """A layout from command-line spellings (see :func:`parse_columns`, :func:`parse_delimiter`)."""
        return cls(
            header=header,
            columns=parse_columns(columns) if columns is not None else None,
            delimiter=parse_delimiter(delimiter) if delimiter is not None else None,
        )

    @property
    def is_default(self) -> bool:
        """Whether everything is left to detection."""
        return self.header is None and self.columns is None and self.delimiter is None


def open_text(path: Path) -> IO[str]:
    """Open a UTF-8 text file, transparently decompressing ``.gz`` and single-member ``.zip`` files.

    A leading byte-order mark (as spreadsheet programs write) is dropped, so it does not end up in the
    first column's name.
    """
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    if path.suffix == ".zip":
        archive = zipfile.ZipFile(path)
        members = [m for m in archive.namelist() if not m.endswith("/") and not m.startswith("__MACOSX")]
        if len(members) != 1:
            raise InvalidInput(f"{path}: a .zip must hold exactly one file, found {len(members)}")
        return io.TextIOWrapper(archive.open(members[0]), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def inner_name(path: Path) -> str:
    """The name of the data file itself (inside a .zip, without .gz)."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            names = [m for m in archive.namelist() if not m.endswith("/")]
            return Path(names[0]).name if names else path.name
    return path.name.removesuffix(".gz")


def _find(columns: list[str], names: Iterable[str]) -> str | None:
    """The first column called one of ``names``: exact spelling first, then ignoring case."""
    names = tuple(names)
    exact = next((c for c in names if c in columns), None)
    if exact is not None:
        return exact
    lowered = {n.lower() for n in names}
    return next((c for c in columns if c.lower() in lowered), None)


def resolve_mapping(
    columns: list[str],
    mapping: dict[str, str],
    aliases: dict[str, tuple[str, ...]],
    required: tuple[str, ...],
) -> dict[str, str]:
    """Field -> source column, from the explicit mapping first, then common names.

    Examples
    --------
    >>> resolve_mapping(["UserId", "sku", "when"], {"ts": "when"}, EVENT_ALIASES, ("user_id", "item_id"))
    {'ts': 'when', 'user_id': 'UserId', 'item_id': 'sku'}
    """
    unknown = [f for f in mapping if f not in aliases]
    if unknown:
        raise InvalidInput(f"unknown field(s) in --map: {unknown}; fields: {', '.join(aliases)}")
    missing_cols = [c for c in mapping.values() if c not in columns]
    if missing_cols:
        raise InvalidInput(f"mapped column(s) {missing_cols} not in the file's columns {columns}")
    resolved = dict(mapping)
    for field, names in aliases.items():
        if field not in resolved:
            found = _find(columns, names)
            if found is not None:
                resolved[field] = found
    absent = [f for f in required if f not in resolved]
    if absent:
        raise InvalidInput(f"cannot find column(s) for {absent} among {columns}; map them with --map FIELD=COLUMN")
    return resolved


def kind_from_columns(columns: list[str], mapping: dict[str, str] | None = None) -> Literal["events", "items"]:
    """Whether a file with these columns holds events or items (the rules are in ``detect_format``).

    Examples
    --------
    >>> kind_from_columns(["item_id", "title", "text", "categories", "attributes", "available"])
    'items'
    >>> kind_from_columns(["user_id", "item_id", "type", "ts"]), kind_from_columns(["sku", "price"])
    ('events', 'items')
    >>> kind_from_columns(["item_id", "timestamp"])
    'events'
    """
    mapping = mapping or {}
    item_only = [f for f in ITEM_ALIASES if f != "item_id"]
    event_only = [f for f in EVENT_ALIASES if f != "item_id"]
    if any(f in mapping for f in event_only):
        return "events"
    if any(f in mapping for f in item_only):
        return "items"
    if _find(columns, EVENT_ALIASES["user_id"]) is not None:
        return "events"
    if any(_find(columns, ITEM_ALIASES[f]) is not None for f in item_only):
        return "items"
    has_item = "item_id" in mapping or _find(columns, ITEM_ALIASES["item_id"]) is not None
    if has_item and not any(_find(columns, EVENT_ALIASES[f]) is not None for f in event_only):
        return "items"
    return "events"


def parse_ts(raw: Any) -> float | datetime | None:
    """Unix seconds (number or numeric string) or ISO 8601; empty -> None."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, int | float):
        return raw
    text = str(raw).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"ts {text!r} is neither unix seconds nor ISO 8601") from exc


def _records(f: Iterable[str], delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of each non-blank row; a space delimiter splits on runs of blanks."""
    if delimiter == " ":
        reader = csv.reader((line.strip().replace("\t", " ") for line in f), delimiter=" ", skipinitialspace=True)
    else:
        reader = csv.reader(f, delimiter=delimiter)
    for fields in reader:
        if any(x.strip() for x in fields):
            yield reader.line_num, fields


def sniff_delimiter(sample: str, complete: bool = True) -> str:
    """The first of ``, tab ; | space`` that splits every sampled row into the same number (>= 2) of fields.

    ``complete=False`` says the sample was cut short, so its last row is ignored. With no such
    delimiter the file is read as one column per row (comma-separated).

    Examples
    --------
    >>> sniff_delimiter("1 10  1700000000\\n2 11 1700000001\\n"), sniff_delimiter("a;b\\nc;d\\n")
    (' ', ';')
    """
    for delimiter in SNIFFED_DELIMITERS:
        try:
            rows = [fields for _, fields in _records(io.StringIO(sample), delimiter)]
        except csv.Error:
            continue
        if not complete:
            rows = rows[:-1]
        widths = {len(r) for r in rows[:_SAMPLE_ROWS]}
        if len(widths) == 1 and widths.pop() >= 2:
            return delimiter
    return ","


def _is_value(field: str) -> bool:
    text = field.strip()
    return bool(_NUMBER.match(text) or _DATE.match(text))


def _show(fields: list[str]) -> str:
    shown = [f if len(f) <= 30 else f[:27] + "..." for f in fields[:8]]
    return ", ".join(shown) + (", ..." if len(fields) > 8 else "")


def _example_columns(n: int) -> str:
    examples = {1: "item_id", 2: "user_id,item_id", 3: "user_id,item_id,ts", 4: "user_id,item_id,value,ts"}
    if n in examples:
        return examples[n]
    return f"user_id,item_id,value,ts,... ({n} names)"


def _data_reason(fields: list[str], mapping: dict[str, str]) -> str | None:
    """Why a first row looks like data rather than a header, or ``None`` if it looks like a header."""
    values = [f.strip() for f in fields if f.strip()]
    numbers = [v for v in values if _is_value(v)]
    if numbers:
        return f"{numbers[0]!r} is a value, not a column name"
    mapped = {c.lower() for c in mapping.values()}
    if not any(v.lower() in KNOWN_COLUMNS or v.lower() in mapped for v in values):
        return "none of its fields is a known column name or a --map column"
    return None


def _looks_like_header(fields: list[str], columns: tuple[str, ...], mapping: dict[str, str]) -> bool:
    values = [f.strip().lower() for f in fields if f.strip()]
    names = KNOWN_COLUMNS | {c.lower() for c in columns} | {c.lower() for c in mapping.values()}
    return not any(_is_value(v) for v in values) and any(v in names for v in values)


class _Table:
    """An open CSV or JSON-lines file: its columns, then its rows as dicts."""

    def __init__(self, path: Path, fmt: str, mapping: dict[str, str], layout: Layout) -> None:
        self.path = path
        self.fmt = fmt
        self.file = open_text(path)
        try:
            if fmt == "csv":
                self._open_csv(mapping, layout)
            else:
                if not layout.is_default:
                    raise InvalidInput(f"{path}: {LAYOUT_OPTIONS} apply to delimited text files, not JSON lines")
                self._open_jsonl()
        except BaseException:
            self.file.close()
            raise

    def _open_csv(self, mapping: dict[str, str], layout: Layout) -> None:
        path = self.path
        if layout.delimiter is not None:
            delimiter = layout.delimiter
        else:
            with open_text(path) as probe:
                sample = probe.read(_SAMPLE_CHARS)
                complete = probe.read(1) == ""
            delimiter = sniff_delimiter(sample, complete)
        self.records = _records(self.file, delimiter)
        self.pending: list[tuple[int, list[str]]] = []
        first = self._next_record()
        if first is None:
            raise InvalidInput(f"{path}: no rows found")
        n, fields = first
        if layout.header is None and layout.columns is not None and _looks_like_header(fields, layout.columns, mapping):
            raise InvalidInput(
                f"{path}:{n}: line {n} ({_show(fields)}) looks like a header, but --columns says the file has "
                "none: to use that header drop --columns (rename its columns with --map FIELD=COLUMN); "
                f"if line {n} is data, add --no-header"
            )
        if layout.header is False or layout.columns is not None:
            self.columns: list[str] = list(layout.columns or (str(i) for i in range(1, len(fields) + 1)))
            self.width_source = "--columns names" if layout.columns else f"line {n} has"
            self.pending = [first]
            return
        if layout.header is None:
            reason = _data_reason(fields, mapping)
            if reason is not None:
                raise InvalidInput(
                    f"{path}:{n}: line {n} ({_show(fields)}) looks like data, not a header ({reason}); "
                    f"if the file has no header row, name its fields: --no-header --columns "
                    f"{_example_columns(len(fields))}; if line {n} is the header, add --header "
                    "(and --map FIELD=COLUMN for columns with other names)"
                )
        self.columns = [f.strip() for f in fields]
        self.width_source = "the header has"

    def _next_record(self) -> tuple[int, list[str]] | None:
        try:
            return next(self.records, None)
        except csv.Error as exc:
            raise InvalidInput(f"{self.path}: {exc}") from exc

    def _open_jsonl(self) -> None:
        self.lines = enumerate(self.file, 1)
        self.first: list[tuple[int, dict[str, Any]]] = []
        for n, line in self.lines:
            if line.strip():
                self.first.append((n, self._parse(n, line)))
                break
        if not self.first:
            raise InvalidInput(f"{self.path}: no rows found")
        self.columns = list(self.first[0][1])

    def _parse(self, n: int, line: str) -> dict[str, Any]:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{self.path}:{n}: invalid JSON: {exc.msg}") from exc
        if not isinstance(obj, dict):
            raise InvalidInput(f"{self.path}:{n}: expected a JSON object per line")
        return obj

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(line number, row)`` pairs; the file is closed once they are read."""
        with self.file:
            if self.fmt == "csv":
                width = len(self.columns)
                while (record := self.pending.pop(0) if self.pending else self._next_record()) is not None:
                    n, fields = record
                    if len(fields) != width:
                        raise InvalidInput(
                            f"{self.path}:{n}: {len(fields)} fields, but {self.width_source} {width} "
                            f"({_show(self.columns)})"
                        )
                    yield n, dict(zip(self.columns, fields, strict=True))
            else:
                yield from self.first
                for n, line in self.lines:
                    if line.strip():
                        yield n, self._parse(n, line)

    def close(self) -> None:
        self.file.close()


def table_columns(
    path: Path, fmt: str, mapping: dict[str, str] | None = None, layout: Layout | None = None
) -> list[str]:
    """The columns of a CSV (``fmt="csv"``) or JSON-lines (``"jsonl"``) file, as the readers see them.

    Raises :class:`InvalidInput` where reading would (a line 1 that looks like data, say).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "e.txt"; _ = p.write_text("7 42 1700000000\\n")
    >>> table_columns(p, "csv", layout=Layout(columns=("user_id", "item_id", "ts")))
    ['user_id', 'item_id', 'ts']
    """
    table = _Table(path, fmt, mapping or {}, layout or Layout())
    table.close()
    return table.columns


def read_events(
    path: Path,
    fmt: str,
    mapping: dict[str, str] | None = None,
    default_type: str = "rating",
    layout: Layout | None = None,
) -> Iterator[tuple[int, EventIn]]:
    """Events from a CSV (``fmt="csv"``) or JSON-lines (``"jsonl"``) file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "e.txt"; _ = p.write_text("7  42\\t1700000000\\n8 43 1700000001\\n")
    >>> [(n, e.user_id, e.ts) for n, e in read_events(p, "csv", layout=Layout(columns=("user_id", "item_id", "ts")))]
    [(1, '7', 1700000000.0), (2, '8', 1700000001.0)]
    """
    table = _Table(path, fmt, mapping or {}, layout or Layout())
    try:
        cols = resolve_mapping(table.columns, mapping or {}, EVENT_ALIASES, ("user_id", "item_id"))
    except BaseException:
        table.close()
        raise
    for n, row in table.rows():
        try:
            value = row.get(cols["value"]) if "value" in cols else None
            yield (
                n,
                EventIn(
                    user_id=str(row[cols["user_id"]]),
                    item_id=str(row[cols["item_id"]]),
                    type=str(row[cols["type"]]) if "type" in cols else default_type,
                    ts=parse_ts(row.get(cols["ts"])) if "ts" in cols else None,
                    value=None if value in (None, "") else float(value),
                    event_id=str(row[cols["event_id"]]) if cols.get("event_id") and row.get(cols["event_id"]) else None,
                ),
            )
        except ValidationError as exc:
            raise InvalidInput(f"{path}:{n}: {format_validation_error(exc)}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{path}:{n}: {exc}") from exc


def _categories(raw: Any) -> list[str]:
    if raw is None or raw == "":
        return []
    if isinstance(raw, list):
        return [str(c) for c in raw]
    return [c.strip() for c in str(raw).replace(";", "|").split("|") if c.strip()]


def read_items(
    path: Path, fmt: str, mapping: dict[str, str] | None = None, layout: Layout | None = None
) -> Iterator[tuple[int, ItemIn]]:
    """Items from a CSV or JSON-lines file; other numeric columns become attributes.

    A JSON object in an ``attributes`` column (as ``freshrec generate`` writes) is taken as the item's
    attributes, beside those numeric columns.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "items.jsonl"
    >>> _ = p.write_text('{"item_id": "a", "title": "Shoe", "attributes": {"price": 9.5}}\\n')
    >>> [(it.item_id, it.title, it.attributes) for _, it in read_items(p, "jsonl")]
    [('a', 'Shoe', {'price': 9.5})]
    """
    table = _Table(path, fmt, mapping or {}, layout or Layout())
    try:
        cols = resolve_mapping(table.columns, mapping or {}, ITEM_ALIASES, ("item_id",))
    except BaseException:
        table.close()
        raise
    used = set(cols.values())
    for n, row in table.rows():
        try:
            fields: dict[str, Any] = {"item_id": str(row[cols["item_id"]])}
            for name in ("title", "text"):
                if name in cols and row.get(cols[name]) not in (None, ""):
                    fields[name] = str(row[cols[name]])
            if "categories" in cols:
                fields["categories"] = _categories(row.get(cols["categories"]))
            if "available" in cols and row.get(cols["available"]) not in (None, ""):
                fields["available"] = str(row[cols["available"]]).lower() in ("1", "true", "yes", "y")
            attributes = {}
            for c, v in row.items():
                if c in used or v in (None, "") or isinstance(v, bool):
                    continue
                try:
                    attributes[c] = float(v)
                except (TypeError, ValueError):
                    continue
            nested = row.get("attributes")
            if "attributes" not in used and isinstance(nested, dict):
                attributes.update(nested)
            fields["attributes"] = attributes
            yield n, ItemIn(**fields)
        except ValidationError as exc:
            raise InvalidInput(f"{path}:{n}: {format_validation_error(exc)}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{path}:{n}: {exc}") from exc

"""Generic CSV and JSON-lines readers for events and items, with a column mapping.

The mapping names which source column feeds each field (``{"user_id": "userId", ...}``); fields left out
are found by common names (``userId``, ``reviewerID``, ``asin``, ``timestamp``, ``rating``...). Files may
be plain, ``.gz``, or a ``.zip`` holding one file (e.g. the Amazon review dumps).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

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


def open_text(path: Path) -> IO[str]:
    """Open a text file, transparently decompressing ``.gz`` and single-member ``.zip`` files."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    if path.suffix == ".zip":
        archive = zipfile.ZipFile(path)
        members = [m for m in archive.namelist() if not m.endswith("/") and not m.startswith("__MACOSX")]
        if len(members) != 1:
            raise InvalidInput(f"{path}: a .zip must hold exactly one file, found {len(members)}")
        return io.TextIOWrapper(archive.open(members[0]), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def inner_name(path: Path) -> str:
    """The name of the data file itself (inside a .zip, without .gz)."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            names = [m for m in archive.namelist() if not m.endswith("/")]
            return Path(names[0]).name if names else path.name
    return path.name.removesuffix(".gz")


def resolve_mapping(
    columns: list[str],
    mapping: dict[str, str],
    aliases: dict[str, tuple[str, ...]],
    required: tuple[str, ...],
) -> dict[str, str]:
    """Field -> source column, from the explicit mapping first, then common names."""
    unknown = [f for f in mapping if f not in aliases]
    if unknown:
        raise InvalidInput(f"unknown field(s) in --map: {unknown}; fields: {', '.join(aliases)}")
    missing_cols = [c for c in mapping.values() if c not in columns]
    if missing_cols:
        raise InvalidInput(f"mapped column(s) {missing_cols} not in the file's columns {columns}")
    resolved = dict(mapping)
    for field, names in aliases.items():
        if field not in resolved:
            found = next((c for c in names if c in columns), None)
            if found is not None:
                resolved[field] = found
    absent = [f for f in required if f not in resolved]
    if absent:
        raise InvalidInput(f"cannot find column(s) for {absent} among {columns}; map them with --map FIELD=COLUMN")
    return resolved


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


def _rows(path: Path, fmt: str) -> tuple[list[str], Iterator[tuple[int, dict[str, Any]]]]:
    """Columns and (line, row) pairs of a CSV or JSON-lines file."""
    if fmt == "csv":
        with open_text(path) as probe:
            sample = probe.read(65536)
        try:
            dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
        f = open_text(path)
        reader = csv.DictReader(f, dialect=dialect)
        columns = list(reader.fieldnames or [])

        def gen_csv() -> Iterator[tuple[int, dict[str, Any]]]:
            with f:
                yield from enumerate(reader, 2)

        return columns, gen_csv()

    f = open_text(path)
    first_lines: list[tuple[int, dict[str, Any]]] = []

    def parse(n: int, line: str) -> dict[str, Any]:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}:{n}: invalid JSON: {exc.msg}") from exc
        if not isinstance(obj, dict):
            raise InvalidInput(f"{path}:{n}: expected a JSON object per line")
        return obj

    lines = enumerate(f, 1)
    for n, line in lines:
        if line.strip():
            first_lines.append((n, parse(n, line)))
            break
    columns = list(first_lines[0][1]) if first_lines else []

    def gen_jsonl() -> Iterator[tuple[int, dict[str, Any]]]:
        with f:
            yield from first_lines
            for n, line in lines:
                if line.strip():
                    yield n, parse(n, line)

    return columns, gen_jsonl()


def read_events(
    path: Path, fmt: str, mapping: dict[str, str] | None = None, default_type: str = "rating"
) -> Iterator[tuple[int, EventIn]]:
    """Events from a CSV (``fmt="csv"``) or JSON-lines (``"jsonl"``) file."""
    columns, rows = _rows(path, fmt)
    cols = resolve_mapping(columns, mapping or {}, EVENT_ALIASES, ("user_id", "item_id"))
    for n, row in rows:
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


def read_items(path: Path, fmt: str, mapping: dict[str, str] | None = None) -> Iterator[tuple[int, ItemIn]]:
    """Items from a CSV or JSON-lines file; other numeric columns become attributes."""
    columns, rows = _rows(path, fmt)
    cols = resolve_mapping(columns, mapping or {}, ITEM_ALIASES, ("item_id",))
    used = set(cols.values())
    for n, row in rows:
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
            fields["attributes"] = attributes
            yield n, ItemIn(**fields)
        except ValidationError as exc:
            raise InvalidInput(f"{path}:{n}: {format_validation_error(exc)}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{path}:{n}: {exc}") from exc

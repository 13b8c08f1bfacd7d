"""Known file formats, their readers, and detection from a file's name, first line and columns."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from freshrec.datasets import movielens, tabular
from freshrec.datasets.tabular import Layout
from freshrec.errors import InvalidInput

Kind = Literal["events", "items"]


@dataclass(frozen=True)
class Format:
    name: str
    kind: Kind
    description: str
    read: Callable[..., Iterator[tuple[int, Any]]]


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "ml-100k",
            "events",
            "MovieLens 100K u.data (tab-separated)",
            lambda p, **_: movielens.read_ml100k_ratings(p),
        ),
        Format(
            "ml-1m",
            "events",
            "MovieLens 1M ratings.dat (::-separated)",
            lambda p, **_: movielens.read_ml1m_ratings(p),
        ),
        Format(
            "ml-100k-items",
            "items",
            "MovieLens 100K u.item (latin-1)",
            lambda p, **_: movielens.read_ml100k_items(p),
        ),
        Format(
            "ml-1m-items",
            "items",
            "MovieLens 1M movies.dat (latin-1)",
            lambda p, **_: movielens.read_ml1m_movies(p),
        ),
        Format(
            "ml-latest-items",
            "items",
            "MovieLens latest movies.csv (+ tags.csv)",
            lambda p, **_: movielens.read_ml_latest_movies(p),
        ),
        Format(
            "csv",
            "events",
            "CSV events with a column mapping",
            lambda p, mapping=None, default_type="rating", layout=None, **_: tabular.read_events(
                p, "csv", mapping, default_type, layout
            ),
        ),
        Format(
            "jsonl",
            "events",
            "JSON-lines events with a column mapping",
            lambda p, mapping=None, default_type="rating", layout=None, **_: tabular.read_events(
                p, "jsonl", mapping, default_type, layout
            ),
        ),
        Format(
            "csv-items",
            "items",
            "CSV items with a column mapping",
            lambda p, mapping=None, layout=None, **_: tabular.read_items(p, "csv", mapping, layout),
        ),
        Format(
            "jsonl-items",
            "items",
            "JSON-lines items with a column mapping",
            lambda p, mapping=None, layout=None, **_: tabular.read_items(p, "jsonl", mapping, layout),
        ),
    )
}

_BY_NAME = {
    "u.data": "ml-100k",
    "ratings.dat": "ml-1m",
    "u.item": "ml-100k-items",
    "movies.dat": "ml-1m-items",
}
_ML100K_LINE = re.compile(r"^\d+\t\d+\t\d+(\.\d+)?\t\d+$")
_ML1M_RATING = re.compile(r"^\d+::\d+::\d+(\.\d+)?::\d+$")
_ML1M_MOVIE = re.compile(r"^\d+::.*::.*$")


def _first_line(path: Path) -> str:
    with tabular.open_text(path) if path.suffix in (".gz", ".zip") else open(path, encoding="latin-1") as f:
        for line in f:
            if line.strip():
                # spreadsheet exports may start with a byte-order mark, which would hide a leading "{"
                return line.strip().removeprefix("\xef\xbb\xbf").removeprefix("\ufeff")
    return ""


def detect_format(
    path: Path,
    kind: Kind | None = None,
    mapping: dict[str, str] | None = None,
    layout: Layout | None = None,
) -> Format:
    """Pick a format from the file name, then its first line, then (CSV and JSON lines) its columns.

    MovieLens files are known by name (``u.data``, ``ratings.dat``, ``u.item``, ``movies.dat``) or by
    the shape of their first line. Any other file is JSON lines if its first line starts with ``{`` or
    its name ends in ``.json``, ``.jsonl`` or ``.ndjson``, and delimited text (CSV) otherwise. A
    ``layout`` other than the default (``--header``, ``--no-header``, ``--columns``, ``--delimiter``)
    skips the MovieLens checks: the file is read as CSV.

    Without ``kind``, a CSV or JSON-lines file holds events or items by its columns (the CSV header
    or ``layout.columns``, the keys of the first JSON object) and ``mapping``. Column names are the
    aliases of :mod:`freshrec.datasets.tabular`, matched ignoring case. The first rule that applies
    decides:

    1. ``mapping`` names an events-only field (``user_id``, ``type``, ``ts``, ``value``,
       ``event_id``): events;
    2. ``mapping`` names an items-only field (``title``, ``text``, ``categories``, ``available``):
       items;
    3. a column names the user (``user_id``, ``userId``, ``reviewerID``...): events;
    4. a column names an items-only field (``title``, ``categories``, ``genres``...): items;
    5. a column names the item and none names an events-only field (``timestamp``, ``rating``...):
       items;
    6. otherwise events (the reader then says which columns it misses).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> p = d / "u.data"; _ = p.write_text("196\\t242\\t3\\t881250949\\n")
    >>> detect_format(p).name
    'ml-100k'
    >>> p = d / "items.jsonl"; _ = p.write_text('{"item_id": "a", "title": "Shoe", "categories": []}\\n')
    >>> detect_format(p).name
    'jsonl-items'
    >>> p = d / "e.txt"; _ = p.write_text("u1 i1 1700000000\\n")
    >>> detect_format(p, layout=Layout(columns=("user_id", "item_id", "ts"))).name
    'csv'
    """
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    layout = layout or Layout()
    name = tabular.inner_name(path)
    first = _first_line(path)
    fmt: str | None = None
    if layout.is_default:
        fmt = _BY_NAME.get(name)
        if fmt is None:
            if _ML100K_LINE.match(first):
                fmt = "ml-100k"
            elif _ML1M_RATING.match(first):
                fmt = "ml-1m"
            elif _ML1M_MOVIE.match(first):
                fmt = "ml-1m-items"
            elif first.count("|") == 23 and first.split("|")[0].isdigit():
                fmt = "ml-100k-items"
            elif name == "movies.csv" and first.startswith("movieId,title,genres"):
                fmt = "ml-latest-items"
    if fmt is None:
        base = "jsonl" if first.startswith("{") or name.endswith((".json", ".jsonl", ".ndjson")) else "csv"
        if kind is None:
            kind = tabular.kind_from_columns(tabular.table_columns(path, base, mapping, layout), mapping)
        fmt = f"{base}-items" if kind == "items" else base
    chosen = FORMATS[fmt]
    if kind is not None and chosen.kind != kind:
        raise InvalidInput(f"{path} looks like {chosen.description}, which holds {chosen.kind}, not {kind}")
    return chosen

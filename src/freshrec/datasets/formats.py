"""Known file formats, their readers, and detection from a file's name and first line."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from freshrec.datasets import movielens, tabular
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
            lambda p, mapping=None, default_type="rating", **_: tabular.read_events(p, "csv", mapping, default_type),
        ),
        Format(
            "jsonl",
            "events",
            "JSON-lines events with a column mapping",
            lambda p, mapping=None, default_type="rating", **_: tabular.read_events(p, "jsonl", mapping, default_type),
        ),
        Format(
            "csv-items",
            "items",
            "CSV items with a column mapping",
            lambda p, mapping=None, **_: tabular.read_items(p, "csv", mapping),
        ),
        Format(
            "jsonl-items",
            "items",
            "JSON-lines items with a column mapping",
            lambda p, mapping=None, **_: tabular.read_items(p, "jsonl", mapping),
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
                return line.strip()
    return ""


def detect_format(path: Path, kind: Kind | None = None) -> Format:
    """Pick a format from the file name, then from its first line; ``kind`` settles CSV/JSON ambiguity.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "u.data"; _ = p.write_text("196\\t242\\t3\\t881250949\\n")
    >>> detect_format(p).name
    'ml-100k'
    """
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    name = tabular.inner_name(path)
    first = _first_line(path)
    fmt: str | None = _BY_NAME.get(name)
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
        elif first.startswith("{") or name.endswith((".json", ".jsonl", ".ndjson")):
            fmt = "jsonl-items" if kind == "items" else "jsonl"
        else:
            fmt = "csv-items" if kind == "items" else "csv"
    chosen = FORMATS[fmt]
    if kind is not None and chosen.kind != kind:
        raise InvalidInput(f"{path} looks like {chosen.description}, which holds {chosen.kind}, not {kind}")
    return chosen

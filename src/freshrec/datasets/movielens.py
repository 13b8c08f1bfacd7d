"""MovieLens readers: ML-100K (``u.data``, ``u.item``), ML-1M (``ratings.dat``, ``movies.dat``) and
ML-latest (``ratings.csv``, ``movies.csv``, ``tags.csv``).

Ratings become events of type ``rating`` with the rating as ``value`` (the sequential-recommendation
literature treats every rating as an implicit interaction). ``u.item`` and ``movies.dat`` are latin-1.
Readers yield ``(line_number, record)`` so errors can name the offending line.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from freshrec.errors import InvalidInput
from freshrec.schema import EventIn, ItemIn, format_validation_error

ML100K_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]
_YEAR = re.compile(r"\((\d{4})\)\s*$")


def _bad(path: Path, line: int, why: str) -> InvalidInput:
    return InvalidInput(f"{path}:{line}: {why}")


def _rating_event(path: Path, line: int, fields: list[str]) -> EventIn:
    if len(fields) != 4:
        raise _bad(path, line, f"expected 4 fields (user, item, rating, timestamp), got {len(fields)}")
    user, item, rating, ts = fields
    try:
        return EventIn(user_id=user, item_id=item, type="rating", value=float(rating), ts=int(ts))
    except ValueError as exc:
        raise _bad(path, line, format_validation_error(exc)) from exc


def read_ml100k_ratings(path: Path) -> Iterator[tuple[int, EventIn]]:
    """``u.data``: ``user \\t item \\t rating \\t unix time``."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                yield n, _rating_event(path, n, line.rstrip("\r\n").split("\t"))


def read_ml1m_ratings(path: Path) -> Iterator[tuple[int, EventIn]]:
    """``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``."""
    with open(path, encoding="latin-1") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                yield n, _rating_event(path, n, line.rstrip("\r\n").split("::"))


def _year(title: str) -> dict[str, float]:
    m = _YEAR.search(title)
    return {"year": float(m.group(1))} if m else {}


def read_ml100k_items(path: Path) -> Iterator[tuple[int, ItemIn]]:
    """``u.item``: ``id|title|release date|video release|IMDb URL|19 genre flags`` (latin-1)."""
    genres = ML100K_GENRES
    genre_file = path.with_name("u.genre")
    if genre_file.is_file():
        names = [ln.split("|")[0] for ln in genre_file.read_text(encoding="latin-1").splitlines() if "|" in ln]
        if len(names) == 19:
            genres = names
    with open(path, encoding="latin-1") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("|")
            if len(fields) != 24:
                raise _bad(path, n, f"expected 24 '|'-separated fields, got {len(fields)}")
            flags = fields[5:]
            yield (
                n,
                ItemIn(
                    item_id=fields[0],
                    title=fields[1] or None,
                    categories=[g for g, f in zip(genres, flags, strict=True) if f == "1"],
                    attributes=_year(fields[1]),
                ),
            )


def read_ml1m_movies(path: Path) -> Iterator[tuple[int, ItemIn]]:
    """``movies.dat``: ``MovieID::Title::Genre|Genre`` (latin-1)."""
    with open(path, encoding="latin-1") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("::")
            if len(fields) != 3:
                raise _bad(path, n, f"expected 3 '::'-separated fields, got {len(fields)}")
            yield (
                n,
                ItemIn(
                    item_id=fields[0],
                    title=fields[1],
                    categories=[g for g in fields[2].split("|") if g],
                    attributes=_year(fields[1]),
                ),
            )


def read_ml_latest_movies(path: Path, tags: Path | None = None) -> Iterator[tuple[int, ItemIn]]:
    """``movies.csv`` (``movieId,title,genres``); user tags from ``tags.csv`` beside it become the text."""
    tags = tags if tags is not None else path.with_name("tags.csv")
    tag_text: dict[str, list[str]] = defaultdict(list)
    if tags.is_file():
        with open(tags, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                tag_text[row["movieId"]].append(row["tag"])
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"movieId", "title", "genres"} <= set(reader.fieldnames):
            raise _bad(path, 1, "expected a header with movieId,title,genres")
        for n, row in enumerate(reader, 2):
            genres = [] if row["genres"] == "(no genres listed)" else row["genres"].split("|")
            text = " ".join(dict.fromkeys(tag_text.get(row["movieId"], []))) or None
            yield (
                n,
                ItemIn(
                    item_id=row["movieId"],
                    title=row["title"],
                    categories=genres,
                    text=text,
                    attributes=_year(row["title"]),
                ),
            )

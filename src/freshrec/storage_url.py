"""Parsing of store URLs (``sqlite:///relative.db``, ``sqlite:////abs/path.db``, ``memory://``)."""

from __future__ import annotations

from pathlib import Path


def split_url(url: str) -> tuple[str, str]:
    """``(scheme, rest)`` of a store URL; raises ``ValueError`` when there is no scheme."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise ValueError(f"store URL {url!r} has no scheme (expected e.g. sqlite:///path.db)")
    return scheme, rest


def sqlite_path(url: str) -> Path:
    """Database path of a ``sqlite:///`` URL (SQLAlchemy convention: four slashes for absolute paths).

    Example
    -------
    >>> str(sqlite_path("sqlite:////var/lib/fr/events.db")), str(sqlite_path("sqlite:///data/events.db"))
    ('/var/lib/fr/events.db', 'data/events.db')
    """
    scheme, rest = split_url(url)
    if scheme != "sqlite" or not rest.startswith("/") or len(rest) < 2:
        raise ValueError(f"not a sqlite URL: {url!r} (expected sqlite:///<path>)")
    return Path(rest[1:])

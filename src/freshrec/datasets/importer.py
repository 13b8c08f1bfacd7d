"""Import a file of events or items into an engine: validate everything first, then store.

The whole file is read and validated before the first write, so a bad line stops the import with its
line number and leaves the stores exactly as they were. Events without an ``event_id`` get one derived
from their content (user, item, type, time, value), so importing the same file twice stores it once.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from freshrec.datasets.formats import FORMATS, Format, Kind, detect_format
from freshrec.errors import InvalidInput
from freshrec.schema import EventIn, EventRecord, ItemIn
from freshrec.validation import check_events, check_items

if TYPE_CHECKING:
    from freshrec.engine import Engine

CHUNK = 5000


@dataclass
class ImportReport:
    path: str
    format: str
    kind: Kind
    rows: int
    stored: int
    duplicates: int
    seconds: float


def content_event_id(e: EventIn, ts: float) -> str:
    """A stable id from an event's content, so re-importing a file is idempotent."""
    key = "\x1f".join((e.user_id, e.item_id, e.type, repr(ts), repr(e.value)))
    return "imp-" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def read_rows(
    path: Path,
    *,
    kind: Kind | None = None,
    fmt: str | None = None,
    mapping: dict[str, str] | None = None,
    default_type: str = "rating",
    progress: bool = True,
) -> tuple[Format, list[Any]]:
    """Read and validate every row of a file: ``(format, [EventIn | ItemIn, ...])``."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise InvalidInput(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
        chosen: Format = FORMATS[fmt]
        if kind is not None and chosen.kind != kind:
            raise InvalidInput(f"format {fmt!r} holds {chosen.kind}, not {kind}")
    else:
        chosen = detect_format(path, kind)
    reader = chosen.read(path, mapping=mapping, default_type=default_type)
    rows = [
        row for _, row in tqdm(reader, desc=f"reading {path.name} ({chosen.name})", unit="rows", disable=not progress)
    ]
    if not rows:
        raise InvalidInput(f"{path}: no rows found")
    return chosen, rows


def import_file(
    engine: Engine,
    path: Path,
    *,
    kind: Kind | None = None,
    fmt: str | None = None,
    mapping: dict[str, str] | None = None,
    default_type: str = "rating",
    progress: bool = True,
) -> ImportReport:
    """Read, validate and store a file; see the module docstring for the guarantees."""
    started = time.perf_counter()
    chosen, rows = read_rows(path, kind=kind, fmt=fmt, mapping=mapping, default_type=default_type, progress=progress)
    if chosen.kind == "items":
        stored = _store_items(engine, rows, progress)
        duplicates = 0
    else:
        stored, duplicates = _store_events(engine, rows, progress)
    return ImportReport(
        str(path), chosen.name, chosen.kind, len(rows), stored, duplicates, time.perf_counter() - started
    )


def _store_events(engine: Engine, events: list[EventIn], progress: bool) -> tuple[int, int]:
    settings = engine.settings.events
    limits = settings.model_copy(update={"max_batch": max(settings.max_batch, len(events))})
    check_events(events, limits, engine.types)
    now = time.time()
    stored = duplicates = 0
    with tqdm(total=len(events), desc="storing events", unit="ev", disable=not progress) as bar:
        for start in range(0, len(events), CHUNK):
            chunk = events[start : start + CHUNK]
            records = []
            for e in chunk:
                ts = e.timestamp(now)
                value = None if e.value is None else float(e.value)
                records.append(
                    EventRecord(
                        0,
                        e.user_id,
                        e.item_id,
                        e.type,
                        ts,
                        value,
                        e.event_id or content_event_id(e, ts),
                        e.context,
                    )
                )
            results = engine.append_records(records)
            dup = sum(r.duplicate for r in results)
            duplicates += dup
            stored += len(results) - dup
            bar.update(len(chunk))
    return stored, duplicates


def _store_items(engine: Engine, items: list[ItemIn], progress: bool) -> int:
    settings = engine.settings.events
    merged: dict[str, ItemIn] = {}
    for it in items:  # a file may list an item twice: the last row wins, as with repeated upserts
        merged[it.item_id] = it
    unique = list(merged.values())
    check_items(unique, settings.model_copy(update={"max_batch": max(settings.max_batch, len(unique))}))
    with tqdm(total=len(unique), desc="storing items", unit="item", disable=not progress) as bar:
        for start in range(0, len(unique), CHUNK):
            chunk = unique[start : start + CHUNK]
            engine.catalog.upsert(chunk)
            bar.update(len(chunk))
    return len(unique)

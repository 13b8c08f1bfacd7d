"""Import a file of events or items into an engine: validate everything first, then store.

:func:`validate_file` reads the whole file and runs every check that storing would (the row schema,
the configured event types, id lengths), without touching any store; :func:`store_file` then writes
the validated rows. So a bad line stops the import with its line number before anything is written,
and ``freshrec import`` validates before it opens (or creates) the data directory. Events without an
``event_id`` get one derived from their content (user, item, type, time, value), so importing the same
file twice stores it once.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from freshrec.config import EventSettings
from freshrec.datasets.formats import FORMATS, Format, Kind, detect_format
from freshrec.datasets.tabular import LAYOUT_OPTIONS, Layout
from freshrec.errors import InvalidInput
from freshrec.schema import EventIn, EventRecord, ItemIn
from freshrec.sequence import EventTypes
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


@dataclass(frozen=True)
class ValidatedFile:
    """A file read and checked completely, ready for :func:`store_file`.

    ``records`` are the events in file order, or the items with one entry per ``item_id`` (a later
    row replaces an earlier one, as repeated upserts would); ``rows`` counts the rows read.
    """

    path: Path
    format: Format
    rows: int
    records: list[Any]
    settings: EventSettings
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
    layout: Layout | None = None,
) -> tuple[Format, list[Any]]:
    """Read every row of a file and check its schema: ``(format, [EventIn | ItemIn, ...])``.

    Settings-dependent checks (event types, id lengths) are :func:`validate_file`'s.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "views.tsv"; _ = p.write_text("u1\\ti1\\t1700000000\\n")
    >>> layout = Layout(columns=("user_id", "item_id", "ts"))
    >>> fmt, rows = read_rows(p, default_type="view", layout=layout, progress=False)
    >>> fmt.name, rows[0].type, rows[0].ts
    ('csv', 'view', 1700000000.0)
    """
    layout = layout or Layout()
    if fmt is not None:
        if fmt not in FORMATS:
            raise InvalidInput(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
        chosen: Format = FORMATS[fmt]
        if kind is not None and chosen.kind != kind:
            raise InvalidInput(f"format {fmt!r} holds {chosen.kind}, not {kind}")
    else:
        chosen = detect_format(path, kind, mapping, layout)
    if not layout.is_default and chosen.name not in ("csv", "csv-items"):
        raise InvalidInput(f"{LAYOUT_OPTIONS} apply to the csv and csv-items formats, not {chosen.name}")
    reader = chosen.read(path, mapping=mapping, default_type=default_type, layout=layout)
    rows = [
        row for _, row in tqdm(reader, desc=f"reading {path.name} ({chosen.name})", unit="rows", disable=not progress)
    ]
    if not rows:
        raise InvalidInput(f"{path}: no rows found")
    return chosen, rows


def validate_file(
    path: Path,
    settings: EventSettings | None = None,
    *,
    kind: Kind | None = None,
    fmt: str | None = None,
    mapping: dict[str, str] | None = None,
    default_type: str = "rating",
    layout: Layout | None = None,
    progress: bool = True,
) -> ValidatedFile:
    """Read a whole file and run every check storing it would, touching no store.

    Parameters
    ----------
    path
        The file (CSV, JSON lines, MovieLens; ``.gz`` and one-file ``.zip`` too).
    settings
        The event settings the rows are checked against (event types, id lengths); the defaults
        when ``None``. Pass the settings of the engine the file is meant for.
    kind, fmt, mapping, default_type, layout
        As for :func:`read_rows`.
    progress
        Show a progress bar.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "e.csv"; _ = p.write_text("user,item,type\\nu1,i1,teleport\\n")
    >>> validate_file(p, progress=False)
    Traceback (most recent call last):
    ...
    freshrec.errors.InvalidInput: events[0].type: unknown event type 'teleport'; known types: ...
    """
    started = time.perf_counter()
    settings = settings if settings is not None else EventSettings()
    chosen, rows = read_rows(
        path, kind=kind, fmt=fmt, mapping=mapping, default_type=default_type, progress=progress, layout=layout
    )
    records = _check(chosen.kind, rows, settings)
    return ValidatedFile(path, chosen, len(rows), records, settings, time.perf_counter() - started)


def _check(kind: Kind, rows: list[Any], settings: EventSettings) -> list[Any]:
    """The rows to store, after the settings-dependent checks; raises :class:`InvalidInput`."""
    if kind == "items":
        merged: dict[str, ItemIn] = {}
        for it in rows:
            merged[it.item_id] = it
        unique = list(merged.values())
        check_items(unique, settings.model_copy(update={"max_batch": max(settings.max_batch, len(unique))}))
        return unique
    limits = settings.model_copy(update={"max_batch": max(settings.max_batch, len(rows))})
    check_events(rows, limits, EventTypes(settings.types, settings.negative_types))
    return rows


def store_file(engine: Engine, validated: ValidatedFile, *, progress: bool = True) -> ImportReport:
    """Store the rows of a :func:`validate_file` result into an engine.

    Rows checked against other event settings than the engine's are checked again first, so nothing
    the engine would refuse is stored.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from freshrec.config import load_settings
    >>> from freshrec.engine import build_engine
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> p = d / "views.csv"; _ = p.write_text("user_id,item_id,ts\\nu1,i1,1700000000\\n")
    >>> settings = load_settings(storage={"data_dir": d / "data"})
    >>> validated = validate_file(p, settings.events, default_type="view", progress=False)
    >>> engine = build_engine(settings, load_model=False)
    >>> store_file(engine, validated, progress=False).stored
    1
    >>> engine.close()
    """
    started = time.perf_counter()
    chosen = validated.format
    records = validated.records
    if validated.settings != engine.settings.events:
        records = _check(chosen.kind, records, engine.settings.events)
    if chosen.kind == "items":
        stored = _store_items(engine, records, progress)
        duplicates = 0
    else:
        stored, duplicates = _store_events(engine, records, progress)
    seconds = validated.seconds + time.perf_counter() - started
    return ImportReport(str(validated.path), chosen.name, chosen.kind, validated.rows, stored, duplicates, seconds)


def import_file(
    engine: Engine,
    path: Path,
    *,
    kind: Kind | None = None,
    fmt: str | None = None,
    mapping: dict[str, str] | None = None,
    default_type: str = "rating",
    progress: bool = True,
    layout: Layout | None = None,
) -> ImportReport:
    """Read, validate and store a file: :func:`validate_file` against the engine's settings, then
    :func:`store_file`. See the module docstring for the guarantees.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from freshrec.config import load_settings
    >>> from freshrec.engine import build_engine
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> p = d / "ratings.txt"; _ = p.write_text("1 10 4 100\\n1 11 5 101\\n")
    >>> engine = build_engine(load_settings(storage={"data_dir": d / "data"}), load_model=False)
    >>> layout = Layout(columns=("user_id", "item_id", "value", "ts"))
    >>> import_file(engine, p, layout=layout, progress=False).stored
    2
    >>> engine.close()
    """
    validated = validate_file(
        path,
        engine.settings.events,
        kind=kind,
        fmt=fmt,
        mapping=mapping,
        default_type=default_type,
        layout=layout,
        progress=progress,
    )
    return store_file(engine, validated, progress=progress)


def _store_events(engine: Engine, events: list[EventIn], progress: bool) -> tuple[int, int]:
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
    with tqdm(total=len(items), desc="storing items", unit="item", disable=not progress) as bar:
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            engine.catalog.upsert(chunk)
            bar.update(len(chunk))
    return len(items)

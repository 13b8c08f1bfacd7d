"""Load a whole time-stamped event source into memory, in time order (for replays and benchmarks).

A source is a data directory (its event log and catalogue), a dataset directory (MovieLens 100K /
1M / latest, the Amazon 5-core zip, or a `freshrec generate` directory), or one events file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from freshrec.datasets.importer import read_rows
from freshrec.errors import InvalidInput
from freshrec.schema import EventIn, EventRecord, ItemIn

#: Events file -> the items file that goes with it, when a directory is given.
KNOWN_LAYOUTS = [
    ("u.data", "u.item"),
    ("ratings.dat", "movies.dat"),
    ("ratings.csv", "movies.csv"),
    ("events.jsonl", "items.jsonl"),
    ("Musical_Instruments.zip", None),
    ("Musical_Instruments.json", None),
]


@dataclass
class EventSource:
    name: str
    events: list[EventRecord]  # time-ordered; ties keep file order; offset = position in the file
    items: list[ItemIn] = field(default_factory=list)


def to_records(rows: list[EventIn], where: str) -> list[EventRecord]:
    """Time-ordered records; every event must carry its own time."""
    records = []
    for n, e in enumerate(rows):
        if e.ts is None:
            raise InvalidInput(f"{where}: event {n} has no ts; a replay needs event times")
        records.append(
            EventRecord(
                n,
                e.user_id,
                e.item_id,
                e.type,
                e.timestamp(0.0),
                None if e.value is None else float(e.value),
                e.event_id,
                e.context,
            )
        )
    records.sort(key=lambda r: (r.ts, r.offset))
    return records


def _from_data_dir(path: Path) -> EventSource:
    from freshrec.catalog.sqlite import SQLiteCatalog
    from freshrec.events.base import iter_events
    from freshrec.events.sqlite import SQLiteEventLog

    log = SQLiteEventLog(path / "events.db")
    try:
        events = sorted(iter_events(log), key=lambda r: (r.ts, r.offset))
    finally:
        log.close()
    items: list[ItemIn] = []
    if (path / "catalog.db").is_file():
        catalog = SQLiteCatalog(path / "catalog.db")
        try:
            stored = catalog.get_by_idx(list(range(1, len(catalog) + 1)))
            items = [
                ItemIn(
                    item_id=i.item_id,
                    title=i.title,
                    text=i.text,
                    categories=i.categories,
                    attributes=i.attributes,
                    available=i.available,
                )
                for i in stored
            ]
        finally:
            catalog.close()
    return EventSource(path.name, events, items)


def load_source(path: Path, items_file: Path | None = None, progress: bool = False) -> EventSource:
    """Read a source (see the module docstring); ``items_file`` overrides the items found beside it."""
    if not path.exists():
        raise InvalidInput(f"no such file or directory: {path}")
    items_path: Path | None = items_file
    if path.is_dir():
        if (path / "events.db").is_file():
            source = _from_data_dir(path)
            if items_file is not None:
                _, rows = read_rows(items_file, kind="items", progress=progress)
                source.items = rows
            return source
        for events_name, items_name in KNOWN_LAYOUTS:
            if (path / events_name).is_file():
                events_path = path / events_name
                if items_path is None and items_name and (path / items_name).is_file():
                    items_path = path / items_name
                break
        else:
            raise InvalidInput(f"{path} holds no events file I know ({', '.join(e for e, _ in KNOWN_LAYOUTS)})")
        name = path.name
    else:
        events_path, name = path, path.stem
    _, rows = read_rows(events_path, kind="events", progress=progress)
    items: list[ItemIn] = []
    if items_path is not None:
        _, items = read_rows(items_path, kind="items", progress=progress)
    return EventSource(name, to_records(rows, str(events_path)), items)

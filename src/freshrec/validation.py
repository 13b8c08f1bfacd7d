"""Checks that depend on settings (event-type registry, id length, batch size), applied before anything
is stored. Structural checks (types, required fields) are in :mod:`freshrec.schema`."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from freshrec.config import EventSettings
from freshrec.errors import InvalidInput, PayloadTooLarge
from freshrec.schema import EventIn, EventRecord, ItemIn
from freshrec.sequence import EventTypes

MAX_CONTEXT_BYTES = 4096


def check_batch_size(n: int, limit: int, what: str) -> None:
    if n == 0:
        raise InvalidInput(f"no {what} given")
    if n > limit:
        raise PayloadTooLarge(f"batch of {n} {what} exceeds the limit of {limit} (events.max_batch)")


def check_id(value: str | None, where: str, max_length: int) -> None:
    if value is not None and len(value) > max_length:
        raise InvalidInput(f"{where}: id is {len(value)} characters, longer than events.max_id_length={max_length}")


def check_events(
    events: Sequence[EventIn], settings: EventSettings, types: EventTypes, now: float | None = None
) -> None:
    """Raise :class:`InvalidInput` naming the first bad event; nothing is stored when this raises. ``now``:
    the server's clock, against which timestamps from the future are refused.

    >>> from freshrec.config import EventSettings
    >>> bad = [EventIn(user_id="u", item_id="i", type="teleport")]
    >>> check_events(bad, EventSettings(), EventTypes(["view"]))
    Traceback (most recent call last):
    ...
    freshrec.errors.InvalidInput: events[0].type: unknown event type 'teleport'; known types: view
    """
    check_batch_size(len(events), settings.max_batch, "events")
    for i, e in enumerate(events):
        if e.type not in types:
            raise InvalidInput(
                f"events[{i}].type: unknown event type {e.type!r}; known types: {', '.join(types.names)}"
            )
        for name in ("user_id", "item_id", "event_id"):
            check_id(getattr(e, name), f"events[{i}].{name}", settings.max_id_length)
        if e.context is not None and len(json.dumps(e.context)) > MAX_CONTEXT_BYTES:
            raise InvalidInput(f"events[{i}].context: larger than {MAX_CONTEXT_BYTES} bytes as JSON")
        if now is not None and e.ts is not None and e.timestamp(now) > now + settings.max_future_s:
            raise InvalidInput(
                f"events[{i}].ts: {e.timestamp(now):.0f} is more than {settings.max_future_s:g} s after the server's "
                f"clock ({now:.0f}; events.max_future_s)"
            )


def check_items(items: Sequence[ItemIn], settings: EventSettings) -> None:
    check_batch_size(len(items), settings.max_batch, "items")
    seen: set[str] = set()
    for i, it in enumerate(items):
        check_id(it.item_id, f"items[{i}].item_id", settings.max_id_length)
        if it.item_id in seen:
            raise InvalidInput(f"items[{i}].item_id: {it.item_id!r} appears twice in one batch")
        seen.add(it.item_id)


def foreign_record_problem(rec: EventRecord, settings: EventSettings, types: EventTypes) -> str | None:
    """Why a logged event cannot be folded into state (``None``: it can). Events another producer wrote
    straight to a shared log (a Kafka topic) never passed :func:`check_events`; readers skip the bad ones
    instead of failing on them.

    >>> from freshrec.config import EventSettings
    >>> foreign_record_problem(EventRecord(1, "u", "i", "teleport", 0.0), EventSettings(), EventTypes(["view"]))
    "unknown event type 'teleport'"
    """
    if rec.type not in types:
        return f"unknown event type {rec.type!r}"
    for name in ("user_id", "item_id"):
        value = getattr(rec, name)
        if not value or len(value) > settings.max_id_length or value != value.strip():
            return f"bad {name} {value!r}"
    if not math.isfinite(rec.ts) or (rec.value is not None and not math.isfinite(rec.value)):
        return "a timestamp or value that is not a finite number"
    return None

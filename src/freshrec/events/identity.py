"""What the logs remember of an event id or an erased user (a digest), and the rule for a resent event_id."""

from __future__ import annotations

import hashlib

from freshrec.errors import Conflict
from freshrec.schema import EventRecord


def id_digest(value: str) -> str:
    """How erased users and event ids are remembered: SHA-256, never the id itself.

    >>> id_digest("u1")[:12]
    'bb82030dbc2b'
    """
    return hashlib.sha256(value.encode()).hexdigest()


def check_same_event(new: EventRecord, stored: tuple[int, EventRecord | None]) -> None:
    """Raise :class:`~freshrec.errors.Conflict` when ``new`` carries the ``event_id`` of a stored event (its
    offset, 0 for one earlier in the same batch, and the event, ``None`` once erased) but another user, item,
    type or value: a retry must resend
    the same event. The timestamp may differ (a retry without ``ts`` is stamped anew), and so may the context.

    >>> stored = EventRecord(7, "u1", "i1", "view", 1.0, event_id="e-1")
    >>> check_same_event(EventRecord(0, "u1", "i1", "view", 2.0, event_id="e-1"), (7, stored))
    >>> check_same_event(EventRecord(0, "u1", "i2", "view", 2.0, event_id="e-1"), (7, stored))
    Traceback (most recent call last):
    ...
    freshrec.errors.Conflict: event_id 'e-1' is stored at offset 7 with another item_id; send a new event_id ...
    """
    offset, old = stored
    if old is None:
        return
    changed = [f for f in ("user_id", "item_id", "type", "value") if getattr(new, f) != getattr(old, f)]
    if changed:
        where = f"is stored at offset {offset}" if offset > 0 else "comes twice in this batch"
        raise Conflict(
            f"event_id {new.event_id!r} {where} with another {', '.join(changed)}; send a new event_id for a new "
            "event (nothing in this batch was stored)"
        )

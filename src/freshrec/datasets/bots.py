"""Generated bots and floods mixed into a stream of real events: test data for the data-quality guard.

Kinds (all seeded, all after ``start_ts``, merged into the stream by time unless said otherwise):

* ``burst``: a scraper clicking random items at machine rate (an event every 0.2-2 s);
* ``hammer``: a bot pushing one item: views of it alternate with random items, every 10-40 s;
* ``marathon``: random items every 20-90 s around the clock, for a day or more;
* ``duplicate`` flood: a real user's client re-sends its last events (same item, type and time) in a burst;
* ``late`` flood: a real user's client delivers a stale queue: events stamped hours to days before the
  event they follow in the log (log order differs from time order).

Injected events carry ``context={"injected": kind}`` so a measurement can tell them apart; the guard never
reads an event's context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from freshrec.schema import EventRecord

BOT_KINDS = ("burst", "hammer", "marathon")
FLOOD_KINDS = ("duplicate", "late")
#: Events per bot of each kind, and the seconds between them.
_BOT_SHAPE = {"burst": (1000, (0.2, 2.0)), "hammer": (600, (10.0, 40.0)), "marathon": (1800, (20.0, 90.0))}
#: Events one flood re-sends or delivers late.
FLOOD_EVENTS = 40


@dataclass
class Injected:
    """A stream with injected events, in log order; ``kind_of[user]`` names each bot and flooded user."""

    events: list[EventRecord]
    kind_of: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def is_injected(event: EventRecord) -> bool:
        return bool(event.context and "injected" in event.context)


def inject(
    stream: Sequence[EventRecord],
    items: Sequence[str],
    start_ts: float,
    bots_per_kind: int = 10,
    floods_per_kind: int = 10,
    seed: int = 0,
    coordinated: bool = False,
) -> Injected:
    """Mix bots and floods into ``stream`` (time-ordered real events) after ``start_ts``; see the module
    docstring. Floods hit real users with events after ``start_ts``. ``coordinated``: every hammer bot
    pushes the same item (a promotion attack) instead of one of its own.

    Example
    -------
    >>> real = [EventRecord(0, f"u{n % 5}", f"i{n % 7}", "view", 100.0 * n) for n in range(100)]
    >>> out = inject(real, [f"i{n}" for n in range(7)], start_ts=5000.0, bots_per_kind=1, floods_per_kind=1)
    >>> sorted(set(out.kind_of.values()))
    ['burst', 'duplicate', 'hammer', 'late', 'marathon']
    >>> sum(Injected.is_injected(e) for e in out.events) == len(out.events) - len(real)
    True
    """
    rng = np.random.default_rng(seed)
    end_ts = max(e.ts for e in stream)
    timed: list[EventRecord] = []
    kind_of: dict[str, str] = {}
    shared = items[int(rng.integers(len(items)))]
    for kind in BOT_KINDS:
        count, (lo, hi) = _BOT_SHAPE[kind]
        for b in range(bots_per_kind):
            user = f"bot-{kind}-{b}"
            kind_of[user] = kind
            target = shared if coordinated else items[int(rng.integers(len(items)))]
            t = float(rng.uniform(start_ts, max(start_ts, end_ts - count * hi)))
            for k in range(count):
                item = target if kind == "hammer" and k % 2 == 0 else items[int(rng.integers(len(items)))]
                timed.append(EventRecord(0, user, item, "view", round(t, 3), context={"injected": kind}))
                t += float(rng.uniform(lo, hi))
    out = sorted([*stream, *timed], key=lambda e: e.ts)
    by_user: dict[str, list[int]] = {}
    for j, e in enumerate(out):
        if e.ts >= start_ts and not Injected.is_injected(e):
            by_user.setdefault(e.user_id, []).append(j)
    eligible = sorted(u for u, js in by_user.items() if len(js) >= 2)
    chosen = rng.choice(len(eligible), size=min(len(eligible), 2 * floods_per_kind), replace=False)
    flooded = [eligible[int(c)] for c in chosen]
    inserts: dict[int, list[EventRecord]] = {}
    for f, user in enumerate(flooded):
        kind = FLOOD_KINDS[f % 2]
        kind_of[user] = kind
        positions = by_user[user]
        at = positions[int(rng.integers(1, len(positions)))]  # the flood arrives right after one of its events
        if kind == "duplicate":
            before = [out[j] for j in positions if j <= at]
            sent = [before[int(rng.integers(len(before)))] for _ in range(FLOOD_EVENTS)]
        else:
            # stamped hours to days before the event it follows, never before ``start_ts``
            t0 = float(rng.uniform(start_ts, max(start_ts, out[at].ts - 2 * 3600.0)))
            sent = [
                EventRecord(0, user, items[int(rng.integers(len(items)))], "view", round(t0 + 30.0 * c, 3))
                for c in range(FLOOD_EVENTS)
            ]
        inserts[at] = [EventRecord(0, e.user_id, e.item_id, e.type, e.ts, context={"injected": kind}) for e in sent]
    merged: list[EventRecord] = []
    for j, e in enumerate(out):
        merged.append(e)
        merged.extend(inserts.get(j, ()))
    return Injected(merged, kind_of)

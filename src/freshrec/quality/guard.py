"""DataGuard: decides, event by event in log order, what the online trainer may learn from.

Per user, in event time (never the wall clock, so a replay is judged as the stream happened):

* **burst**: more than ``max_events_per_minute`` events within a minute;
* **long_session**: active for ``max_session_hours`` without a :data:`SESSION_GAP_S` pause;
* **item_repeats**: more than ``max_item_repeats`` events on one item within :data:`REPEAT_WINDOW_S`;
* **flood**: more than :data:`FLOOD_EVENTS` duplicate or out-of-order events within :data:`REPEAT_WINDOW_S`.

A flagged user is quarantined from then on: none of its events is admitted (nor its earlier events of the
same micro-batch, which are not trained yet), and the trainer drops what it held of the user. Single events
are kept out without flagging anyone when they duplicate one of the user's recent events (same item, type
and time), arrive more than ``max_lag_s`` behind the user's newest event, or carry a type the deployment
does not know. Nothing is removed from the event log or from serving state.

Monitored and reported, never acted on: the event-type mix of each window of ``drift_window_events`` against
the first window, item popularity against the previous window (Jensen-Shannon divergence, base 2), and the
model's NDCG@10 on the gate's recent holdout against its first readings.

The guard's state is a function of the log: the online trainer rebuilds it by reading the log up to its
committed cursor on start, so it needs no checkpoint of its own.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from freshrec.config import QualitySettings
from freshrec.schema import EventRecord

#: A pause this long (event time) ends a session.
SESSION_GAP_S = 1800.0
#: The window for item repeats and floods, in event time.
REPEAT_WINDOW_S = 3600.0
#: Duplicate or out-of-order events of one user within REPEAT_WINDOW_S that flag it as a flood.
FLOOD_EVENTS = 20
#: A relative drop of the model's recent-holdout NDCG@10 (mean of the last MODEL_READINGS gate decisions
#: against the first ones) reported as model drift.
MODEL_DRIFT = 0.10
MODEL_READINGS = 5
#: Windows of drift figures kept for the report.
DRIFT_HISTORY = 50
#: Flagged users listed in the report (newest first); the counts cover all of them.
REPORT_USERS = 1000

Reason = Literal["burst", "long_session", "item_repeats", "flood"]
REASONS: tuple[Reason, ...] = ("burst", "long_session", "item_repeats", "flood")
#: What happens to one event: admitted, or why it is kept out of training.
Decision = Literal["admitted", "quarantined", "duplicate", "out_of_order", "unknown_type"]
DECISIONS: tuple[Decision, ...] = ("admitted", "quarantined", "duplicate", "out_of_order", "unknown_type")


@dataclass
class Flag:
    """Why and since when a user is quarantined (``since_ts`` event time, ``since_offset`` log position)."""

    user_id: str
    reason: Reason
    since_ts: float
    since_offset: int
    detail: str
    events_held: int = 0  # the user's events kept out of training since (the flagging one included)


@dataclass
class Verdicts:
    """The guard's answer for a batch: ``admitted[j]`` for event ``j``, and the users flagged by it."""

    admitted: list[bool]
    flagged: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Track:
    """One user's recent activity: (ts, item, type) of its admitted events within REPEAT_WINDOW_S."""

    recent: deque = field(default_factory=deque)
    keys: Counter = field(default_factory=Counter)  # (ts, item, type) -> count in ``recent``
    items: Counter = field(default_factory=Counter)  # item -> count in ``recent``
    dropped: deque = field(default_factory=deque)  # newest_ts at each duplicate / late event
    newest_ts: float = -math.inf
    session_start: float = -math.inf
    last_ts: float = -math.inf


def js_divergence(p: Counter, q: Counter) -> float:
    """Jensen-Shannon divergence (base 2, 0..1) between two count tables.

    >>> js_divergence(Counter(a=5, b=5), Counter(a=1, b=1)), js_divergence(Counter(a=1), Counter(b=1))
    (0.0, 1.0)
    """
    np_, nq = sum(p.values()), sum(q.values())
    if not np_ or not nq:
        return 0.0
    total = 0.0
    for key in p.keys() | q.keys():
        a, b = p.get(key, 0) / np_, q.get(key, 0) / nq
        m = (a + b) / 2
        if a:
            total += a * math.log2(a / m) / 2
        if b:
            total += b * math.log2(b / m) / 2
    return min(1.0, max(0.0, total))


class DataGuard:
    """Decides which events the online trainer learns from; see the module docstring.

    Parameters
    ----------
    settings
        The ``quality`` section (thresholds).
    known_types
        Event types the deployment accepts (``events.types``); others are kept out of training.

    Example
    -------
    >>> guard = DataGuard(QualitySettings(), ["view", "click"])
    >>> human = [EventRecord(n, "ann", f"i{n}", "view", 1000.0 + 30 * n) for n in range(1, 6)]
    >>> bot = [EventRecord(10 + n, "bot", f"i{n}", "view", 1000.0 + n) for n in range(1, 31)]
    >>> verdicts = guard.admit(human + bot)
    >>> sum(verdicts.admitted[:5]), sum(verdicts.admitted[5:]), verdicts.flagged
    (5, 0, ['bot'])
    >>> guard.flags["bot"].reason, guard.quarantined("ann")
    ('burst', False)
    """

    def __init__(self, settings: QualitySettings, known_types: Iterable[str]) -> None:
        self.settings = settings
        self.known_types = frozenset(known_types)
        self.flags: dict[str, Flag] = {}
        self.counts: Counter = Counter({d: 0 for d in DECISIONS})
        self._tracks: dict[str, _Track] = {}
        self._users: set[str] = set()
        self._types_window: Counter = Counter()
        self._types_reference: Counter | None = None
        self._types_recent: Counter = Counter()
        self._items_window: Counter = Counter()
        self._items_previous: Counter | None = None
        self._window_events = 0
        self._window_end_ts = -math.inf
        self.type_drift: deque = deque(maxlen=DRIFT_HISTORY)  # (window end ts, divergence)
        self.item_drift: deque = deque(maxlen=DRIFT_HISTORY)
        self.model_readings: list[float] = []

    @property
    def users(self) -> set[str]:
        """Every user the guard has seen."""
        return self._users

    def forget(self, users: set[str]) -> None:
        """Drop everything about these users (erased: ``DELETE /v1/users/{id}``), their flags included."""
        for user in users:
            self.flags.pop(user, None)
            self._tracks.pop(user, None)
        self._users -= users

    def quarantined(self, user_id: str) -> bool:
        """Whether the user's events are kept out of training."""
        return user_id in self.flags

    def admit(self, events: Sequence[EventRecord]) -> Verdicts:
        """Judge ``events`` (log order; the trainer passes one micro-batch): which are admitted to training,
        and who was flagged. A user flagged in the batch has none of its events in the batch admitted, those
        before the flagging one included (none is trained yet)."""
        verdicts = Verdicts([])
        for e in events:
            decision = self._decide(e, verdicts.flagged)
            self.counts[decision] += 1
            verdicts.admitted.append(decision == "admitted")
            self._monitor(e)
        if verdicts.flagged:
            # Nothing of this batch is trained yet: a user flagged in it loses its earlier events here too.
            flagged = set(verdicts.flagged)
            for j, e in enumerate(events):
                if verdicts.admitted[j] and e.user_id in flagged:
                    verdicts.admitted[j] = False
                    self.counts["admitted"] -= 1
                    self.counts["quarantined"] += 1
                    self.flags[e.user_id].events_held += 1
        return verdicts

    # ---- per event ---------------------------------------------------------------------------------

    def _decide(self, e: EventRecord, flagged: list[str]) -> Decision:
        self._users.add(e.user_id)
        if e.type not in self.known_types:
            return "unknown_type"
        flag = self.flags.get(e.user_id)
        if flag is not None:
            flag.events_held += 1
            return "quarantined"
        track = self._tracks.get(e.user_id)
        if track is None:
            track = self._tracks[e.user_id] = _Track()
        key = (e.ts, e.item_id, e.type)
        late = track.newest_ts - e.ts > self.settings.max_lag_s
        if late or track.keys[key]:
            track.dropped.append(track.newest_ts)
            while track.dropped and track.dropped[0] < track.newest_ts - REPEAT_WINDOW_S:
                track.dropped.popleft()
            if len(track.dropped) > FLOOD_EVENTS:
                self._flag(e, "flood", f"{len(track.dropped)} duplicate or out-of-order events within an hour")
                flagged.append(e.user_id)
                return "quarantined"
            return "out_of_order" if late else "duplicate"
        self._remember(track, e, key)
        reason = self._abnormal(track, e)
        if reason is not None:
            self._flag(e, *reason)
            flagged.append(e.user_id)
            return "quarantined"
        return "admitted"

    def _remember(self, track: _Track, e: EventRecord, key: tuple[float, str, str]) -> None:
        if e.ts - track.last_ts > SESSION_GAP_S:
            track.session_start = e.ts
        track.last_ts = max(track.last_ts, e.ts)
        track.newest_ts = max(track.newest_ts, e.ts)
        track.recent.append(key)
        track.keys[key] += 1
        track.items[e.item_id] += 1
        horizon = track.newest_ts - REPEAT_WINDOW_S
        while track.recent and track.recent[0][0] < horizon:
            old = track.recent.popleft()
            for table, k in ((track.keys, old), (track.items, old[1])):
                table[k] -= 1
                if not table[k]:
                    del table[k]

    def _abnormal(self, track: _Track, e: EventRecord) -> tuple[Reason, str] | None:
        s = self.settings
        in_minute = 0
        for ts, _, _ in reversed(track.recent):
            if ts <= e.ts - 60.0 or in_minute > s.max_events_per_minute:
                break
            in_minute += 1
        if in_minute > s.max_events_per_minute:
            return "burst", f"more than {s.max_events_per_minute} events within a minute"
        if track.items[e.item_id] > s.max_item_repeats:
            return "item_repeats", f"{track.items[e.item_id]} events on item {e.item_id!r} within an hour"
        hours = (e.ts - track.session_start) / 3600.0
        if hours > s.max_session_hours:
            return "long_session", f"active for {hours:.1f} h without a 30-minute pause"
        return None

    def _flag(self, e: EventRecord, reason: Reason, detail: str) -> None:
        self.flags[e.user_id] = Flag(e.user_id, reason, e.ts, e.offset, detail, events_held=1)
        self._tracks.pop(e.user_id, None)  # a quarantined user needs no more tracking

    # ---- drift monitors ----------------------------------------------------------------------------

    def _monitor(self, e: EventRecord) -> None:
        self._types_window[e.type] += 1
        self._items_window[e.item_id] += 1
        self._window_events += 1
        self._window_end_ts = max(self._window_end_ts, e.ts)
        if self._window_events < self.settings.drift_window_events:
            return
        if self._types_reference is None:
            self._types_reference = self._types_window
        else:
            self.type_drift.append((self._window_end_ts, js_divergence(self._types_reference, self._types_window)))
        if self._items_previous is not None:
            self.item_drift.append((self._window_end_ts, js_divergence(self._items_previous, self._items_window)))
        self._types_recent, self._items_previous = self._types_window, self._items_window
        self._types_window, self._items_window = Counter(), Counter()
        self._window_events = 0

    def observe_model(self, ndcg_at_10: float) -> None:
        """One reading of the serving version's NDCG@10 on the gate's recent holdout (monitored only)."""
        self.model_readings.append(float(ndcg_at_10))

    def model_drift(self) -> dict[str, Any]:
        """The mean of the last readings against the mean of the first ones; ``None`` until both exist."""
        readings = self.model_readings
        if len(readings) < 2 * MODEL_READINGS:
            return {"readings": len(readings), "baseline_ndcg@10": None, "recent_ndcg@10": None, "change": None}
        base = sum(readings[:MODEL_READINGS]) / MODEL_READINGS
        recent = sum(readings[-MODEL_READINGS:]) / MODEL_READINGS
        return {
            "readings": len(readings),
            "baseline_ndcg@10": base,
            "recent_ndcg@10": recent,
            "change": recent / base - 1 if base else None,
        }

    # ---- report ------------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """Counts, flagged users (newest first, at most :data:`REPORT_USERS`), type mix and drift figures
        as plain JSON data: what the trainer writes to ``quality.json`` and ``GET /v1/quality`` returns."""
        threshold = self.settings.drift_threshold
        type_now = self.type_drift[-1][1] if self.type_drift else None
        item_now = self.item_drift[-1][1] if self.item_drift else None
        model = self.model_drift()
        by_reason = Counter(f.reason for f in self.flags.values())
        newest = sorted(self.flags.values(), key=lambda f: f.since_offset, reverse=True)[:REPORT_USERS]
        return {
            "enabled": True,
            "events": dict(self.counts) | {"seen": sum(self.counts.values())},
            "users": {"seen": len(self._users), "flagged": len(self.flags)},
            "flagged_by_reason": {r: by_reason.get(r, 0) for r in REASONS},
            "flagged_users": [asdict(f) for f in newest],
            "type_mix": {
                "reference": _shares(self._types_reference or Counter()),
                "recent": _shares(self._types_recent),
                "divergence": type_now,
                "history": [list(x) for x in self.type_drift],
            },
            "item_popularity": {
                "divergence": item_now,
                "history": [list(x) for x in self.item_drift],
            },
            "model": model,
            "drift_threshold": threshold,
            "flags": {
                "type_mix_drift": type_now is not None and type_now > threshold,
                "item_popularity_drift": item_now is not None and item_now > threshold,
                "model_drift": model["change"] is not None and model["change"] < -MODEL_DRIFT,
            },
        }


def _shares(counts: Counter) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in sorted(counts.items())} if total else {}

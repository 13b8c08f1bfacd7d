"""The data-quality guard's detectors on generated bots and floods against the generated shop's real users."""

from __future__ import annotations

from collections import Counter

import pytest

from freshrec.config import BUILTIN_EVENT_TYPES, QualitySettings
from freshrec.datasets.bots import BOT_KINDS, FLOOD_KINDS, Injected, inject
from freshrec.datasets.synthetic import SyntheticShop
from freshrec.quality.guard import MODEL_READINGS, DataGuard, js_divergence
from freshrec.schema import EventRecord

#: The reason each injected kind should be flagged for.
EXPECTED_REASON = {"burst": "burst", "hammer": "item_repeats", "marathon": "long_session", "duplicate": "flood"}


def records(events: list) -> list[EventRecord]:
    return [
        EventRecord(n + 1, e.user_id, e.item_id, e.type, float(e.ts), context=e.context) for n, e in enumerate(events)
    ]


def judge(guard: DataGuard, events: list[EventRecord], batch: int = 500) -> list[bool]:
    admitted: list[bool] = []
    for lo in range(0, len(events), batch):
        admitted += guard.admit(events[lo : lo + batch]).admitted
    return admitted


def test_bots_and_floods_are_kept_out_and_real_users_are_not(shop: SyntheticShop) -> None:
    real = records(shop.events)
    start = shop.start_ts + 0.6 * (shop.end_ts - shop.start_ts)
    mixed = inject(real, [i.item_id for i in shop.items], start, bots_per_kind=4, floods_per_kind=4, seed=5)
    events = [
        EventRecord(n + 1, e.user_id, e.item_id, e.type, e.ts, context=e.context) for n, e in enumerate(mixed.events)
    ]
    guard = DataGuard(QualitySettings(), BUILTIN_EVENT_TYPES)
    admitted = judge(guard, events)
    held, total = Counter(), Counter()
    for e, ok in zip(events, admitted, strict=True):
        if Injected.is_injected(e):
            kind = e.context["injected"]
            total[kind] += 1
            held[kind] += not ok
    assert set(total) == {*BOT_KINDS, *FLOOD_KINDS}
    share = {k: held[k] / total[k] for k in total}
    assert share["burst"] >= 0.95 and share["hammer"] >= 0.9 and share["marathon"] >= 0.75, share
    assert share["duplicate"] == share["late"] == 1.0, share
    assert sum(held.values()) / sum(total.values()) >= 0.85
    for user, kind in mixed.kind_of.items():
        if kind in EXPECTED_REASON:
            assert guard.flags[user].reason == EXPECTED_REASON[kind], (user, guard.flags.get(user))
    real_users = {e.user_id for e in real} - set(mixed.kind_of)
    assert not [u for u in real_users if guard.quarantined(u)]
    # every real event of an unflagged user is admitted
    assert all(ok for e, ok in zip(events, admitted, strict=True) if e.user_id in real_users)
    report = guard.report()
    assert report["users"]["flagged"] == len(guard.flags) and report["events"]["seen"] == len(events)
    assert report["events"]["admitted"] == sum(admitted)


def test_single_duplicates_late_events_and_unknown_types_are_held_without_flagging() -> None:
    guard = DataGuard(QualitySettings(max_lag_s=600), ["view", "click"])
    t = 10_000.0
    events = [
        EventRecord(1, "ann", "a", "view", t),
        EventRecord(2, "ann", "a", "view", t),  # the client sent it twice
        EventRecord(3, "ann", "b", "click", t + 60),
        EventRecord(4, "ann", "c", "view", t - 3600),  # an hour behind her newest event
        EventRecord(5, "ann", "d", "teleport", t + 70),  # a type this deployment does not know
        EventRecord(6, "ann", "e", "view", t + 80),
    ]
    verdicts = guard.admit(events)
    assert verdicts.admitted == [True, False, True, False, False, True] and verdicts.flagged == []
    assert guard.counts["duplicate"] == guard.counts["out_of_order"] == guard.counts["unknown_type"] == 1


@pytest.mark.parametrize("batch", [1, 1000])
def test_a_flagged_user_is_held_from_then_on_and_within_its_batch(batch: int) -> None:
    guard = DataGuard(QualitySettings(max_events_per_minute=5), ["view"])
    events = [EventRecord(n + 1, "bot", f"i{n}", "view", 100.0 + n) for n in range(10)]
    admitted = judge(guard, events, batch)
    # one event at a time, the first five were admitted before the sixth showed the burst
    assert sum(admitted) == (5 if batch == 1 else 0)
    flag = guard.flags["bot"]
    assert (flag.reason, flag.since_offset, flag.since_ts) == ("burst", 6, 105.0)
    assert flag.events_held == 10 - sum(admitted)


def test_long_sessions_end_with_a_pause() -> None:
    guard = DataGuard(QualitySettings(max_session_hours=1.0), ["view"])
    # every 10 minutes for 3 hours, but with a 40-minute pause after every 50 minutes: never flagged
    t, events = 0.0, []
    for n in range(30):
        t += 40 * 60 if n % 5 == 0 else 10 * 60
        events.append(EventRecord(n + 1, "ann", f"i{n}", "view", t))
    assert all(guard.admit(events).admitted)
    steady = [EventRecord(100 + n, "bob", f"i{n}", "view", 600.0 * n) for n in range(12)]
    verdicts = guard.admit(steady)
    assert verdicts.flagged == ["bob"] and guard.flags["bob"].reason == "long_session"


def test_drift_monitors_report_a_changed_type_mix_popularity_and_model() -> None:
    guard = DataGuard(QualitySettings(drift_window_events=100, drift_threshold=0.1), ["view", "click"])
    steady = [EventRecord(n, f"u{n}", f"i{n % 10}", "view" if n % 4 else "click", float(n)) for n in range(300)]
    guard.admit(steady)
    report = guard.report()
    assert report["type_mix"]["divergence"] < 0.01 and report["item_popularity"]["divergence"] < 0.01
    assert report["type_mix"]["reference"] == {"click": 0.25, "view": 0.75}
    assert not any(report["flags"].values())
    shifted = [EventRecord(n, f"u{n}", f"j{n % 10}", "click", float(n)) for n in range(300, 400)]
    guard.admit(shifted)
    for reading in [0.30] * MODEL_READINGS + [0.20] * MODEL_READINGS:
        guard.observe_model(reading)
    report = guard.report()
    assert report["flags"] == {"type_mix_drift": True, "item_popularity_drift": True, "model_drift": True}
    assert report["item_popularity"]["divergence"] == pytest.approx(1.0)
    assert report["model"]["change"] == pytest.approx(-1 / 3)


def test_forget_drops_a_user_and_its_flag() -> None:
    guard = DataGuard(QualitySettings(max_events_per_minute=2), ["view"])
    guard.admit([EventRecord(n, "bot", f"i{n}", "view", float(n)) for n in range(5)])
    assert guard.quarantined("bot")
    guard.forget({"bot"})
    assert not guard.quarantined("bot") and "bot" not in guard.users and guard.report()["flagged_users"] == []


def test_js_divergence_is_symmetric_and_bounded() -> None:
    p, q = Counter(a=3, b=1), Counter(b=2, c=2)
    assert js_divergence(p, q) == pytest.approx(js_divergence(q, p))
    assert 0 < js_divergence(p, q) < 1 and js_divergence(p, Counter()) == 0.0

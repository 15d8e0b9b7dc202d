"""SLA timers: the one planner (reminders, breaches, unaccepted offers), pauses, deadlines."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from rules import (
    DeadlineKind,
    Priority,
    SlaClock,
    compute_deadlines,
    due_times,
    percent_instant,
    plan_timers,
    policy_for,
    push_due_times,
)

from .helpers import FRIDAY_10, config_with, madrid

H, M = timedelta(hours=1), timedelta(minutes=1)
T0 = FRIDAY_10

# `urgent` counts elapsed time: 50% / 80% of 10 min and of 100 min are easy to read.
URGENT = SlaClock(created_at=T0, priority="urgent", assignee="ana",
                  first_response_due=T0 + 10 * M, resolution_due=T0 + 100 * M)
ALL_URGENT = [("remind-first_response-50", 5), ("remind-first_response-80", 8),
              ("breach-first_response", 10), ("remind-resolution-50", 50),
              ("remind-resolution-80", 80), ("breach-resolution", 100)]

PLAN_CASES = [
    # id, clock fields changed from URGENT, now (minutes after T0), expected (kind, minutes)
    ("not-running", {"running": False, "offered_at": T0}, 0, []),
    ("offered", {"offered_at": T0 + 2 * M}, 0, [("unaccepted", 12), *ALL_URGENT]),
    ("assigned", {}, 0, ALL_URGENT),
    ("no-assignee-reminds-the-team-too", {"assignee": None}, 0, ALL_URGENT),
    ("first-response-made", {"first_response_at": T0 + 3 * M}, 0,
     [("remind-resolution-50", 50), ("remind-resolution-80", 80), ("breach-resolution", 100)]),
    ("late-plan-keeps-latest-reminder", {}, 85,
     [("breach-first_response", 10), ("remind-resolution-80", 80), ("breach-resolution", 100)]),
    ("reminder-kept-until-next-milestone-passes", {}, 8,
     [("remind-first_response-80", 8), ("breach-first_response", 10),
      ("remind-resolution-50", 50), ("remind-resolution-80", 80), ("breach-resolution", 100)]),
    ("past-everything-keeps-breaches", {}, 200,
     [("breach-first_response", 10), ("breach-resolution", 100)]),
    ("no-dues", {"first_response_due": None, "resolution_due": None, "offered_at": T0}, 0,
     [("unaccepted", 10)]),
]


@pytest.mark.parametrize(("fields", "now", "expected"), [c[1:] for c in PLAN_CASES],
                         ids=[c[0] for c in PLAN_CASES])
def test_plan_timers(fields: dict, now: int, expected: list) -> None:
    clock = replace(URGENT, **fields)
    timers = plan_timers(config_with(), clock, now=T0 + now * M)
    assert [(t.kind, t.at - T0) for t in timers] == [(kind, m * M) for kind, m in expected]


def test_plan_timers_counts_reminders_in_business_time() -> None:
    start = madrid(2026, 3, 6, 17, 30)  # Friday, 30 min before closing
    clock = SlaClock(created_at=start, priority="normal", assignee="ana",
                     first_response_due=madrid(2026, 3, 9, 10, 30))
    timers = plan_timers(config_with(), clock, now=start)
    assert [(t.kind, t.at) for t in timers] == [
        ("remind-first_response-50", madrid(2026, 3, 9, 9, 30)),
        ("remind-first_response-80", madrid(2026, 3, 9, 10, 6)),
        ("breach-first_response", madrid(2026, 3, 9, 10, 30))]


FRIDAY_1730, MONDAY_1030 = madrid(2026, 3, 6, 17, 30), madrid(2026, 3, 9, 10, 30)
PERCENT_CASES = [
    # id, start, due, percent, business, expected
    ("business-50", FRIDAY_1730, MONDAY_1030, 50, True, madrid(2026, 3, 9, 9, 30)),
    ("business-80", FRIDAY_1730, MONDAY_1030, 80, True, madrid(2026, 3, 9, 10, 6)),
    ("business-from-the-weekend", madrid(2026, 3, 7, 12), madrid(2026, 3, 9, 11), 50, True,
     madrid(2026, 3, 9, 10)),
    ("elapsed-50", FRIDAY_1730, MONDAY_1030, 50, False, madrid(2026, 3, 8, 2, 0)),
    ("elapsed-80", T0, T0 + 100 * M, 80, False, T0 + 80 * M),
]


@pytest.mark.parametrize(("start", "due", "percent", "business", "expected"),
                         [c[1:] for c in PERCENT_CASES], ids=[c[0] for c in PERCENT_CASES])
def test_percent_instant(start: datetime, due: datetime, percent: int, business: bool,
                         expected: datetime) -> None:
    assert percent_instant(config_with(), start, due, percent, business=business) == expected


def test_percent_instant_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        percent_instant(config_with(), datetime(2026, 3, 6, 10), T0, 50, business=False)


PUSH_CASES = [
    # id, priority, sla_policy, dues (first, resolution), since, until, expected dues, paused
    ("business-policy", "normal", None,
     (madrid(2026, 3, 9, 11), madrid(2026, 3, 10, 17)),
     madrid(2026, 3, 6, 17), madrid(2026, 3, 9, 10),  # 1 h on Friday, 1 h on Monday
     (madrid(2026, 3, 9, 13), madrid(2026, 3, 11, 10)), 2 * H),
    ("elapsed-policy", "urgent", None, (T0 + 10 * M, T0 + 100 * M), T0, T0 + 3 * H,
     (T0 + 190 * M, T0 + 280 * M), 3 * H),
    ("sla-policy-wins-over-priority", "urgent", "normal",
     (madrid(2026, 3, 9, 11), madrid(2026, 3, 10, 17)),
     madrid(2026, 3, 6, 17), madrid(2026, 3, 9, 10),
     (madrid(2026, 3, 9, 13), madrid(2026, 3, 11, 10)), 2 * H),
    ("missing-due-stays-missing", "urgent", None, (None, T0 + 100 * M), T0, T0 + H,
     (None, T0 + 160 * M), H),
    ("until-before-since-is-no-pause", "urgent", None, (T0 + 10 * M, T0 + 100 * M), T0 + H, T0,
     (T0 + 10 * M, T0 + 100 * M), timedelta(0)),
    ("pause-outside-business-hours", "normal", None,
     (madrid(2026, 3, 9, 11), madrid(2026, 3, 10, 17)),
     madrid(2026, 3, 6, 19), madrid(2026, 3, 8, 20),
     (madrid(2026, 3, 9, 11), madrid(2026, 3, 10, 17)), timedelta(0)),
]


@pytest.mark.parametrize(("priority", "sla_policy", "dues", "since", "until", "expected", "paused"),
                         [c[1:] for c in PUSH_CASES], ids=[c[0] for c in PUSH_CASES])
def test_push_due_times(priority: str, sla_policy: str | None, dues: tuple, since: datetime,
                        until: datetime, expected: tuple, paused: timedelta) -> None:
    clock = SlaClock(created_at=T0, priority=priority, sla_policy=sla_policy,
                     first_response_due=dues[0], resolution_due=dues[1])
    pushed = push_due_times(config_with(), clock, since=since, until=until)
    assert (pushed.first_response_due, pushed.resolution_due) == expected
    assert pushed.paused == paused


POLICY_CASES = [
    # id, sla_policy, priority, expected policy key (None: no policy)
    ("named-policy", "vip", "urgent", "vip"),
    ("priority-policy", None, "urgent", "urgent"),
    ("unknown-name-falls-back-to-priority", "gone", "high", "high"),
    ("priority-without-own-policy-uses-normal", None, "low", "normal"),
    ("nothing-known", "gone", "nonsense", None),
    ("nothing-given", None, None, None),
]


@pytest.mark.parametrize(("sla_policy", "priority", "expected"), [c[1:] for c in POLICY_CASES],
                         ids=[c[0] for c in POLICY_CASES])
def test_policy_for(sla_policy: str | None, priority: str | None, expected: str | None) -> None:
    config = config_with()
    found = policy_for(config, sla_policy=sla_policy, priority=priority)
    assert found is (config.sla[expected] if expected else None)


def test_deadlines_in_business_time_with_reminders() -> None:
    config = config_with()
    deadlines = compute_deadlines(config, priority="normal", start=madrid(2026, 3, 6, 17, 30))
    assert deadlines.first_response_due == madrid(2026, 3, 9, 10, 30)  # 2 business hours
    assert deadlines.resolution_due == madrid(2026, 3, 11, 14, 30)  # 0.5 + 9 + 9 + 5.5 h
    reminders = {(r.kind, r.percent): r.at for r in deadlines.reminders}
    assert reminders[(DeadlineKind.first_response, 50)] == madrid(2026, 3, 9, 9, 30)
    assert reminders[(DeadlineKind.first_response, 80)] == madrid(2026, 3, 9, 10, 6)
    assert len(deadlines.reminders) == 4


def test_deadlines_round_the_clock_policy() -> None:
    config = config_with()
    start = madrid(2026, 3, 7, 23, 0)  # Saturday night
    deadlines = compute_deadlines(config, priority=Priority.urgent, start=start)
    assert deadlines.first_response_due == start + 15 * M
    assert deadlines.resolution_due == start + 2 * H
    assert [r.at - start for r in deadlines.reminders] == [
        7.5 * M, 12 * M, 1 * H, 96 * M]


def test_named_policy_and_priority_fallback() -> None:
    config = config_with()
    start = madrid(2026, 3, 4, 10)
    assert compute_deadlines(config, priority="low", start=start, sla="vip").first_response_due \
        == madrid(2026, 3, 4, 10, 30)
    # `low` has no policy of its own: it uses `normal`.
    assert compute_deadlines(config, priority="low", start=start).first_response_due \
        == madrid(2026, 3, 4, 12)


AGREE_CASES = [
    # priority, sla, start
    ("normal", None, madrid(2026, 3, 6, 17, 30)),
    ("urgent", None, madrid(2026, 3, 7, 23, 0)),
    ("low", "vip", madrid(2026, 3, 4, 10)),
    ("high", None, madrid(2026, 3, 28, 12)),  # a weekend, then the DST change
]


@pytest.mark.parametrize(("priority", "sla", "start"), AGREE_CASES)
def test_deadline_reminders_are_the_planned_reminders(priority: str, sla: str | None,
                                                      start: datetime) -> None:
    config = config_with()
    deadlines = compute_deadlines(config, priority=priority, start=start, sla=sla)
    clock = SlaClock(created_at=start, priority=priority, sla_policy=sla, assignee="bob",
                     first_response_due=deadlines.first_response_due,
                     resolution_due=deadlines.resolution_due)
    planned = [(t.kind, t.at) for t in plan_timers(config, clock, now=start)
               if t.kind.startswith("remind-")]
    shown = [(f"remind-{r.kind}-{r.percent}", r.at) for r in deadlines.reminders]
    assert shown == planned
    assert len(shown) == 2 * len(config.escalation.remind_at)


def test_compute_deadlines_refuses_an_unknown_policy() -> None:
    with pytest.raises(KeyError):
        compute_deadlines(config_with(), priority="normal", start=T0, sla="gone")


def test_due_times_are_compute_deadlines_without_the_reminders() -> None:
    config, start = config_with(), madrid(2026, 3, 6, 17, 30)
    deadlines = compute_deadlines(config, priority="normal", start=start)
    assert due_times(config, priority="normal", start=start) == (
        deadlines.first_response_due, deadlines.resolution_due)

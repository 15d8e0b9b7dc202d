"""Tasks born late: a deadline that passed before the task was created gets no reminder and no
breach, stays where it is through pauses, and the task gets its late summary timer instead."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from rules import SlaClock, plan_timers, push_due_times
from rules.sla import LATE_SUMMARY, missed_at_creation

from .helpers import FRIDAY_10, config_with

H, M = timedelta(hours=1), timedelta(minutes=1)
T0 = FRIDAY_10  # the task is created (its message reached us) at T0
SUMMARY = T0 + 2 * M


@pytest.fixture(scope="module")
def config():
    return config_with()


def urgent(sent_ago: timedelta, **fields) -> SlaClock:
    """An urgent task (15 min / 2 h, elapsed time) whose message was sent `sent_ago` before
    it reached us; its due times run from the message."""
    sent = T0 - sent_ago
    return SlaClock(created_at=T0, priority="urgent", assignee="ana",
                    first_response_due=sent + 15 * M, resolution_due=sent + 2 * H, **fields)


def kinds(timers) -> list[tuple[str, float]]:
    return [(t.kind, (t.at - T0) / M) for t in timers]


@pytest.mark.parametrize(
    ("case", "clock", "now", "expected"),
    [
        # on time: every timer as usual, no summary
        ("on-time", urgent(timedelta(0)), 0, [
            ("remind-first_response-50", 7.5), ("remind-first_response-80", 12),
            ("breach-first_response", 15), ("remind-resolution-50", 60),
            ("remind-resolution-80", 96), ("breach-resolution", 120)]),
        # sent 1 h before: the first response was missed before the task existed; the
        # resolution's reminders run from the creation to its due time (1 h later)
        ("first-missed", urgent(H, late_summary_at=SUMMARY), 0, [
            ("remind-resolution-50", 30), ("remind-resolution-80", 48),
            ("breach-resolution", 60), (LATE_SUMMARY, 2)]),
        # sent 2 days before: both missed; only the offer and the summary remain
        ("both-missed", urgent(48 * H, late_summary_at=SUMMARY, offered_at=T0), 0, [
            ("unaccepted", 10), (LATE_SUMMARY, 2)]),
        # planned again later (an agent accepted): still nothing for the missed deadlines,
        # the summary is kept like a breach (it runs once)
        ("both-missed-later", urgent(48 * H, late_summary_at=SUMMARY, first_response_at=T0),
         30, [(LATE_SUMMARY, 2)]),
        ("not-running", urgent(48 * H, late_summary_at=SUMMARY, running=False), 0, []),
    ],
)  # fmt: skip
def test_plan_timers_of_a_task_born_late(config, case, clock, now, expected):
    assert kinds(plan_timers(config, clock, now=T0 + now * M)) == expected


def test_missed_at_creation_names_each_deadline_already_past():
    late = urgent(H)
    assert missed_at_creation(T0, first_response_due=late.first_response_due,
                              resolution_due=late.resolution_due) == {
        "first_response": T0 - 45 * M}
    both = urgent(48 * H)
    assert list(missed_at_creation(T0, first_response_due=both.first_response_due,
                                   resolution_due=both.resolution_due)) == [
        "first_response", "resolution"]
    on_time = urgent(timedelta(0))
    assert missed_at_creation(T0, first_response_due=on_time.first_response_due,
                              resolution_due=on_time.resolution_due) == {}
    assert missed_at_creation(T0, first_response_due=None, resolution_due=None) == {}


def test_a_pause_does_not_move_a_deadline_missed_at_creation(config):
    clock = urgent(H)  # first response missed 45 min before creation, resolution ahead
    pushed = push_due_times(config, clock, since=T0 + 10 * M, until=T0 + 3 * H)
    assert pushed.first_response_due == clock.first_response_due  # stays breached
    assert pushed.resolution_due == clock.resolution_due + 2 * H + 50 * M
    # so a long pause never brings back a breach escalation for it
    after = replace(clock, resolution_due=pushed.resolution_due)
    assert "breach-first_response" not in [t.kind for t in plan_timers(
        config, after, now=T0 + 3 * H)]

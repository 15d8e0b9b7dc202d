"""SLA timers: the one planner of reminders, breaches and unaccepted offers, used by the
worker that fires them and by `opsbot rules test` that shows them. Pure: the caller passes
`now` and what it knows of the task as an SlaClock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from rules.calendar import add_business_time, as_utc, business_time_between
from rules.config import RulesConfig, SlaPolicy
from rules.enums import DeadlineKind, Priority

UNACCEPTED = "unaccepted"
LATE_SUMMARY = "late_summary"  # the team's summary of the tasks that arrived late
DEADLINES = ("first_response", "resolution")
_REMIND = "remind"


@dataclass(frozen=True)
class Timer:
    """One planned timer: `kind` is unaccepted, remind-<deadline>-<percent>, breach-<deadline>
    or late_summary."""

    kind: str
    at: datetime


@dataclass(frozen=True)
class SlaClock:
    """What timer planning reads of a task (bot/ builds it from the stored task)."""

    created_at: datetime  # when its SLA began: the task's creation, or its latest reopening
    priority: str
    sla_policy: str | None = None
    running: bool = True  # open and not waiting on the customer
    offered_at: datetime | None = None  # when it was offered, while it waits to be accepted
    assignee: str | None = None
    first_response_due: datetime | None = None
    first_response_at: datetime | None = None
    resolution_due: datetime | None = None
    late_summary_at: datetime | None = None  # arrived late: when its team's summary goes out


@dataclass(frozen=True)
class PushedDues:
    """The due times after a pause, and how long the pause counted."""

    first_response_due: datetime | None
    resolution_due: datetime | None
    paused: timedelta


@dataclass(frozen=True)
class Reminder:
    """A reminder of `kind`'s deadline at `percent` % of the way to it."""

    kind: DeadlineKind
    percent: int
    at: datetime


@dataclass(frozen=True)
class Deadlines:
    """The due times of a new task and the reminders planned for it."""

    first_response_due: datetime
    resolution_due: datetime
    reminders: tuple[Reminder, ...]


def policy_for(config: RulesConfig, *, sla_policy: str | None,
               priority: str | None) -> SlaPolicy | None:
    """Return the task's policy: its `sla_policy`, else its priority's (a priority without a
    policy of its own uses `normal`); None when neither names a known policy."""
    for key in (sla_policy, priority):
        if key:
            try:
                return config.policy(key)
            except KeyError:
                continue
    return None


def plan_timers(config: RulesConfig, clock: SlaClock, *, now: datetime) -> list[Timer]:
    """Return the timers that apply to the task now: the unaccepted offer, then per deadline
    still to meet its reminders (to the assignee, else the team) and its breach, then the late
    summary of a task that arrived late; none unless the clock runs. A reminder is dropped
    once the next milestone of its deadline has passed `now` too, so a late plan sends at
    most the latest reminder; breaches are always kept (they run once). A deadline missed
    before the task was created (`missed_at_creation`) gets no timer: it is reported once,
    by the late summary, instead of escalating a backlog all at once.
    """
    if not clock.running:
        return []
    timers = []
    if clock.offered_at is not None:
        timers.append(Timer(UNACCEPTED, clock.offered_at + config.escalation.unaccepted_after))
    for deadline, due in _pending_dues(clock):
        if not _missed_at_creation(due, clock.created_at):
            timers.extend(_deadline_timers(config, clock, deadline, due, now=now))
    if clock.late_summary_at is not None:
        timers.append(Timer(LATE_SUMMARY, clock.late_summary_at))
    return timers


def missed_at_creation(created_at: datetime, *, first_response_due: datetime | None,
                       resolution_due: datetime | None) -> dict[str, datetime]:
    """Return the deadlines already past when the task was created at `created_at` (its
    message reached us too late: Meta redelivers for days after an outage), each with its
    due instant; empty for a task on time. `plan_timers` plans nothing for these deadlines
    and `push_due_times` leaves them where they are: they stay breached."""
    dues = zip(DEADLINES, (first_response_due, resolution_due), strict=True)
    return {deadline: due for deadline, due in dues
            if due is not None and _missed_at_creation(due, created_at)}


def _missed_at_creation(due: datetime, created_at: datetime) -> bool:
    return due < created_at


def _pending_dues(clock: SlaClock) -> list[tuple[str, datetime]]:
    """Each deadline still to meet, with its due instant (a first response made meets one)."""
    first = clock.first_response_due if clock.first_response_at is None else None
    dues = zip(DEADLINES, (first, clock.resolution_due), strict=True)
    return [(deadline, due) for deadline, due in dues if due is not None]


def _deadline_timers(config: RulesConfig, clock: SlaClock, deadline: str, due: datetime, *,
                     now: datetime) -> list[Timer]:
    milestones = [*_reminders(config, clock, deadline, due), Timer(f"breach-{deadline}", due)]
    kept = [timer for timer, later in pairwise(milestones) if later.at > now]
    return [*kept, milestones[-1]]


def _reminders(config: RulesConfig, clock: SlaClock, deadline: str,
               due: datetime) -> list[Timer]:
    business = _counts_business_time(config, clock)
    return [Timer(f"{_REMIND}-{deadline}-{percent}",
                  percent_instant(config, clock.created_at, due, percent, business=business))
            for percent in config.escalation.remind_at]


def _counts_business_time(config: RulesConfig, clock: SlaClock) -> bool:
    policy = policy_for(config, sla_policy=clock.sla_policy, priority=clock.priority)
    return bool(policy and policy.business_hours)


def percent_instant(config: RulesConfig, start: datetime, due: datetime, percent: int, *,
                    business: bool) -> datetime:
    """Return the UTC instant `percent` % of the way from `start` to `due`, counted in business
    time when `business`, else in elapsed time. Raises ValueError for naive datetimes."""
    start, due = as_utc(start), as_utc(due)
    if not business:
        return start + (due - start) * percent / 100
    total = business_time_between(config.calendar, start, due)
    return add_business_time(config.calendar, start, total * percent / 100)


def push_due_times(config: RulesConfig, clock: SlaClock, *, since: datetime,
                   until: datetime) -> PushedDues:
    """Return the clock's due times pushed forward by the pause from `since` to `until`, and
    the pause: business time for business-hours policies, elapsed time otherwise (zero when
    until <= since); a due time missed at creation is not moved. Raises ValueError for naive
    datetimes."""
    since, until = as_utc(since), as_utc(until)
    business = _counts_business_time(config, clock)
    if business:
        paused = business_time_between(config.calendar, since, until)
    else:
        paused = max(until - since, timedelta(0))
    first, resolution = (_pushed(config, clock, due, paused, business=business)
                         for due in (clock.first_response_due, clock.resolution_due))
    return PushedDues(first, resolution, paused)


def _pushed(config: RulesConfig, clock: SlaClock, due: datetime | None, paused: timedelta, *,
            business: bool) -> datetime | None:
    if due is None or _missed_at_creation(due, clock.created_at):
        return due
    return add_business_time(config.calendar, due, paused, business_hours=business)


def due_times(config: RulesConfig, *, priority: Priority | str, start: datetime,
              sla: str | None = None) -> tuple[datetime, datetime]:
    """Return the first-response and resolution due instants of policy `sla` (default: the
    priority's policy) for a task created at `start`. Raises KeyError for an unknown policy
    key, ValueError for an unknown priority or a naive `start`."""
    policy = config.policy(sla or Priority(priority))
    first, resolution = (
        add_business_time(config.calendar, start, total, business_hours=policy.business_hours)
        for total in (policy.first_response, policy.resolution))
    return first, resolution


def compute_deadlines(config: RulesConfig, *, priority: Priority | str, start: datetime,
                      sla: str | None = None) -> Deadlines:
    """Return `due_times` with the reminders plan_timers gives the task. Raises like
    `due_times`."""
    first, resolution = due_times(config, priority=priority, start=start, sla=sla)
    clock = SlaClock(created_at=start, priority=str(priority), sla_policy=sla,
                     first_response_due=first, resolution_due=resolution)
    timers = plan_timers(config, clock, now=start)
    reminders = tuple(_as_reminder(timer) for timer in timers
                      if timer.kind.startswith(f"{_REMIND}-"))
    return Deadlines(first, resolution, reminders)


def _as_reminder(timer: Timer) -> Reminder:
    _remind, deadline, percent = timer.kind.split("-")
    return Reminder(DeadlineKind(deadline), int(percent), timer.at)

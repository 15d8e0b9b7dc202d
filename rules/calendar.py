"""Business-time arithmetic: weekly hours and holidays in the business timezone, DST-safe.
Arithmetic happens on UTC instants; wall-clock hours are only used to find the intervals."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from rules.enums import DeadlineKind, Priority
from rules.hours import TimeRange

if TYPE_CHECKING:
    from rules.config import RulesConfig

# A calendar whose every day is a holiday would loop forever; ten years is "never".
_MAX_DAYS = 3660


@dataclass(frozen=True)
class Reminder:
    kind: DeadlineKind
    percent: int
    at: datetime


@dataclass(frozen=True)
class Deadlines:
    first_response_due: datetime
    resolution_due: datetime
    reminders: tuple[Reminder, ...]


def _require_aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("datetimes passed to rules/ must be timezone-aware (UTC)")
    return at.astimezone(UTC)


def _wall(day: date, minute: int, tz: ZoneInfo) -> datetime:
    # Wall-clock arithmetic on an aware datetime, then resolved to a real instant.
    midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
    return (midnight + timedelta(minutes=minute)).astimezone(UTC)


def intervals(week: tuple[tuple[TimeRange, ...], ...], holidays: frozenset[date],
              tz: ZoneInfo, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Yield the open UTC intervals of a weekly calendar from the local day of `start` on."""
    day = start.astimezone(tz).date()
    for _ in range(_MAX_DAYS):
        if day not in holidays:
            for span in week[day.weekday()]:
                yield _wall(day, span.start, tz), _wall(day, span.end, tz)
        day += timedelta(days=1)


def _business_intervals(config: RulesConfig,
                        start: datetime) -> Iterator[tuple[datetime, datetime]]:
    hours = config.business_hours
    return intervals(hours.week, hours.holidays, config.tz, start)


def is_open(week: tuple[tuple[TimeRange, ...], ...], holidays: frozenset[date], tz: ZoneInfo,
            at: datetime) -> bool:
    """Return True when `at` falls inside `week` in `tz` and not on a holiday."""
    at = _require_aware(at)
    day = at.astimezone(tz).date()
    if day in holidays:
        return False
    return any(_wall(day, span.start, tz) <= at < _wall(day, span.end, tz)
               for span in week[day.weekday()])


def is_business_time(config: RulesConfig, at: datetime) -> bool:
    """Return True when `at` falls inside business hours (not on a holiday)."""
    hours = config.business_hours
    return is_open(hours.week, hours.holidays, config.tz, at)


def add_business_time(config: RulesConfig, start: datetime, duration: timedelta, *,
                      business_hours: bool = True) -> datetime:
    """Return the UTC instant `duration` of business time after `start` (plain
    `start + duration` when business_hours is False). Raises ValueError for naive datetimes
    or a calendar with no open time in the next ten years."""
    start = _require_aware(start)
    if not business_hours or duration <= timedelta(0):
        return start + duration
    remaining = duration
    for opens, closes in _business_intervals(config, start):
        cursor = max(opens, start)
        if cursor >= closes:
            continue
        if cursor + remaining <= closes:
            return cursor + remaining
        remaining -= closes - cursor
    raise ValueError("the business calendar has no open time in the next ten years")


def business_time_between(config: RulesConfig, start: datetime, end: datetime) -> timedelta:
    """Return the business time elapsed from `start` to `end` (zero when end <= start)."""
    start, end = _require_aware(start), _require_aware(end)
    total = timedelta(0)
    if end <= start:
        return total
    for opens, closes in _business_intervals(config, start):
        if opens >= end:
            break
        overlap = min(closes, end) - max(opens, start)
        if overlap > timedelta(0):
            total += overlap
    return total


def compute_deadlines(config: RulesConfig, *, priority: Priority | str, start: datetime,
                      sla: str | None = None) -> Deadlines:
    """Return the first-response and resolution deadlines of policy `sla` (default: the
    priority's policy) and one reminder per escalation percentage for each deadline.
    Raises KeyError for an unknown policy key."""
    policy = config.policy(sla or Priority(priority))

    def after(duration: timedelta) -> datetime:
        return add_business_time(config, start, duration, business_hours=policy.business_hours)

    reminders = tuple(
        Reminder(kind, percent, after(total * percent / 100))
        for kind, total in ((DeadlineKind.first_response, policy.first_response),
                            (DeadlineKind.resolution, policy.resolution))
        for percent in config.escalation.remind_at
    )
    return Deadlines(after(policy.first_response), after(policy.resolution), reminders)

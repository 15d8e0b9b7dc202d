"""Business-time arithmetic: weekly hours and holidays in the business timezone, DST-safe.
Arithmetic happens on UTC instants; wall-clock hours are only used to find the intervals."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from rules.hours import TimeRange

# A calendar whose every day is a holiday would loop forever; ten years is "never".
_MAX_DAYS = 3660

Week = tuple[tuple[TimeRange, ...], ...]


@dataclass(frozen=True)
class BusinessCalendar:
    """Opening hours per weekday (Monday first) and closed days, read in `tz`."""

    week: Week
    holidays: frozenset[date]
    tz: ZoneInfo


def as_utc(at: datetime) -> datetime:
    """Return `at` in UTC; raise ValueError for a naive datetime."""
    if at.tzinfo is None:
        raise ValueError("datetimes passed to rules/ must be timezone-aware (UTC)")
    return at.astimezone(UTC)


def _wall(day: date, minute: int, tz: ZoneInfo) -> datetime:
    # Wall-clock arithmetic on an aware datetime, then resolved to a real instant.
    midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
    return (midnight + timedelta(minutes=minute)).astimezone(UTC)


def intervals(week: Week, holidays: frozenset[date],
              tz: ZoneInfo, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Yield the open UTC intervals of a weekly calendar from the local day of `start` on."""
    day = start.astimezone(tz).date()
    for _ in range(_MAX_DAYS):
        if day not in holidays:
            for span in week[day.weekday()]:
                yield _wall(day, span.start, tz), _wall(day, span.end, tz)
        day += timedelta(days=1)


def is_open(week: Week, holidays: frozenset[date], tz: ZoneInfo, at: datetime) -> bool:
    """Return True when `at` falls inside `week` in `tz` and not on a holiday.
    Raises ValueError for a naive datetime."""
    at = as_utc(at)
    day = at.astimezone(tz).date()
    if day in holidays:
        return False
    return any(_wall(day, span.start, tz) <= at < _wall(day, span.end, tz)
               for span in week[day.weekday()])


def _open_intervals(calendar: BusinessCalendar,
                    start: datetime) -> Iterator[tuple[datetime, datetime]]:
    return intervals(calendar.week, calendar.holidays, calendar.tz, start)


def is_business_time(calendar: BusinessCalendar, at: datetime) -> bool:
    """Return True when `at` falls inside business hours (not on a holiday).
    Raises ValueError for a naive datetime."""
    return is_open(calendar.week, calendar.holidays, calendar.tz, at)


def add_business_time(calendar: BusinessCalendar, start: datetime, duration: timedelta, *,
                      business_hours: bool = True) -> datetime:
    """Return the UTC instant `duration` of business time after `start` (plain
    `start + duration` when business_hours is False). Raises ValueError for naive datetimes
    or a calendar with no open time in the next ten years."""
    start = as_utc(start)
    if not business_hours or duration <= timedelta(0):
        return start + duration
    remaining = duration
    for opens, closes in _open_intervals(calendar, start):
        cursor = max(opens, start)
        if cursor >= closes:
            continue
        if cursor + remaining <= closes:
            return cursor + remaining
        remaining -= closes - cursor
    raise ValueError("the business calendar has no open time in the next ten years")


def business_time_between(calendar: BusinessCalendar, start: datetime,
                          end: datetime) -> timedelta:
    """Return the business time elapsed from `start` to `end` (zero when end <= start).
    Raises ValueError for naive datetimes."""
    start, end = as_utc(start), as_utc(end)
    total = timedelta(0)
    if end <= start:
        return total
    for opens, closes in _open_intervals(calendar, start):
        if opens >= end:
            break
        overlap = min(closes, end) - max(opens, start)
        if overlap > timedelta(0):
            total += overlap
    return total

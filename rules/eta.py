"""When a deadline falls, said the way a person says it, in their language and the business
timezone: "dentro de 30 minutos", "hoy antes de las 18:30", "mañana entre las 9:00 y las 9:30",
"el lunes antes de las 10:00" ("in 30 minutes", "today by 6:30 PM", ...).

The promise is the deadline itself, never earlier: times are rounded up to the minute. Dates,
times, weekday names, "hoy"/"mañana" and relative durations come from Babel (CLDR); only the
connecting words ("antes de", "by") are ours. Pure: the caller passes `now`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from babel import Locale, UnknownLocaleError
from babel.dates import (
    format_date,
    format_relative_datetime,
    format_skeleton,
    format_time,
    format_timedelta,
    get_relative_name,
)

from rules.calendar import BusinessCalendar, as_utc, intervals, is_business_time

# Up to an hour away, a deadline is said as a wait ("in 45 minutes"); later, as a clock time.
SOON = timedelta(hours=1)
# A weekday names one day only within the coming week; further away, the date is given.
_WEEK = 7


@dataclass(frozen=True)
class _Words:
    """The connecting words of one language; `the` is the article before a clock time, for
    one o'clock and for any other hour ("la 1:00", "las 9:30")."""

    late: str
    on_day: str
    by: str
    between: str
    the: tuple[str, str] = ("", "")


_WORDS = {
    "es": _Words("lo antes posible", "el {day}", "antes de {time}", "entre {opens} y {due}",
                 ("la ", "las ")),
    "en": _Words("as soon as possible", "on {day}", "by {time}", "between {opens} and {due}"),
}


def describe_due(due: datetime, *, now: datetime, calendar: BusinessCalendar, language: str,
                 business_hours: bool = True) -> str:
    """Return when `due` falls as seen at `now`, in `language` and the calendar's timezone.

    Past due: "as soon as possible". Within SOON: the wait ("in 30 minutes"). Otherwise the
    day (today, tomorrow, a weekday within a week, else the date) and "by" the clock time;
    "between" the opening and the deadline instead when the policy counts `business_hours`,
    the office is closed at `now`, and it opens on the due day before the deadline.
    Languages other than es and en get Babel's own day and time ("demain, 09:30").
    Raises ValueError for naive datetimes."""
    due, now = as_utc(due), as_utc(now)
    locale = _locale(language)
    words = _WORDS.get(locale.language)
    if due <= now:
        return words.late if words else _plain(due, now, calendar, locale)
    if due - now <= SOON:
        minutes = math.ceil((due - now).total_seconds() / 60)
        return format_timedelta(timedelta(minutes=minutes), granularity="minute", threshold=1,
                                add_direction=True, locale=locale)
    if words is None:
        return _plain(due, now, calendar, locale)
    day = _day(_local(due, calendar).date(), _today(now, calendar), locale, words)
    opens = _opening(due, now, calendar) if business_hours else None
    if opens is not None:
        return f"{day} " + words.between.format(opens=_clock(opens, calendar, locale, words),
                                                due=_clock(due, calendar, locale, words))
    return f"{day} " + words.by.format(time=_clock(due, calendar, locale, words))


def _locale(language: str) -> Locale:
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError, AttributeError):
        return Locale.parse("en")


def _local(at: datetime, calendar: BusinessCalendar) -> datetime:
    # Rounded up to the minute: showing 10:47 for 10:47:23 would promise more than we owe.
    local = at.astimezone(calendar.tz)
    if local.second or local.microsecond:
        local = (at + timedelta(minutes=1)).astimezone(calendar.tz)
        local = local.replace(second=0, microsecond=0)
    return local


def _today(now: datetime, calendar: BusinessCalendar) -> date:
    return now.astimezone(calendar.tz).date()


def _day(day: date, today: date, locale: Locale, words: _Words | None) -> str:
    offset = (day - today).days
    relative = get_relative_name("day", offset, locale=locale) if offset in (0, 1) else None
    if relative:
        return relative
    name = (format_date(day, "EEEE", locale=locale) if offset < _WEEK
            else format_skeleton("MMMMd", day, locale=locale))
    return words.on_day.format(day=name) if words else name


def _clock(at: datetime, calendar: BusinessCalendar, locale: Locale, words: _Words) -> str:
    local = _local(at, calendar)
    the = words.the[0] if local.hour == 1 else words.the[1]
    return the + format_time(local.time(), "short", locale=locale)


def _opening(due: datetime, now: datetime, calendar: BusinessCalendar) -> datetime | None:
    """The next opening, when the office is closed now and opens on the due day before due."""
    if is_business_time(calendar, now):
        return None
    opens = next((start for start, end in intervals(calendar.week, calendar.holidays,
                                                    calendar.tz, now) if end > now), None)
    if opens is None or opens >= due:
        return None
    same_day = _local(opens, calendar).date() == _local(due, calendar).date()
    return opens if same_day else None


def _plain(due: datetime, now: datetime, calendar: BusinessCalendar, locale: Locale) -> str:
    local = _local(due, calendar)
    day = _day(local.date(), _today(now, calendar), locale, None)
    return format_relative_datetime(day, local.time(), format="short", locale=locale)

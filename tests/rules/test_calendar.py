"""Business-time arithmetic: weekly hours, holidays and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rules import add_business_time, business_time_between, is_business_time

from .helpers import config_with, madrid

H, M = timedelta(hours=1), timedelta(minutes=1)

ADD_CASES = [
    # id, start (Madrid wall clock), duration, expected (Madrid wall clock)
    ("friday-1730-plus-2h", (2026, 3, 6, 17, 30), 2 * H, (2026, 3, 9, 10, 30)),
    ("inside-same-day", (2026, 3, 4, 10, 0), 3 * H, (2026, 3, 4, 13, 0)),
    ("before-opening", (2026, 3, 4, 7, 0), 30 * M, (2026, 3, 4, 9, 30)),
    ("after-closing", (2026, 3, 4, 20, 0), 1 * H, (2026, 3, 5, 10, 0)),
    ("weekend-start", (2026, 3, 7, 12, 0), 1 * H, (2026, 3, 9, 10, 0)),
    ("ends-at-closing", (2026, 3, 4, 17, 0), 1 * H, (2026, 3, 4, 18, 0)),
    ("spans-days", (2026, 3, 4, 9, 0), 24 * H, (2026, 3, 6, 15, 0)),
    ("holiday-skipped", (2026, 12, 24, 17, 0), 2 * H, (2026, 12, 28, 10, 0)),
    # DST: Europe/Madrid goes CET -> CEST on Sun 29 Mar 2026 and back on Sun 25 Oct 2026.
    ("dst-spring", (2026, 3, 27, 17, 0), 2 * H, (2026, 3, 30, 10, 0)),
    ("dst-autumn", (2026, 10, 23, 17, 30), 1 * H, (2026, 10, 26, 9, 30)),
]


@pytest.mark.parametrize(("start", "duration", "expected"), [c[1:] for c in ADD_CASES],
                         ids=[c[0] for c in ADD_CASES])
def test_add_business_time(start: tuple, duration: timedelta, expected: tuple) -> None:
    calendar = config_with().calendar
    assert add_business_time(calendar, madrid(*start), duration) == madrid(*expected)


def test_dst_deadline_keeps_wall_clock_hours() -> None:
    due = add_business_time(config_with().calendar, madrid(2026, 3, 27, 17, 0), 2 * H)
    # Friday is UTC+1, Monday after the change is UTC+2: 10:00 local is 08:00 UTC.
    assert due == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)


def test_round_the_clock_across_dst_is_elapsed_time() -> None:
    config = config_with()
    start = madrid(2026, 3, 29, 1, 30)  # 30 min before clocks jump from 02:00 to 03:00
    due = add_business_time(config.calendar, start, 1 * H, business_hours=False)
    assert due.astimezone(config.tz).strftime("%H:%M %Z") == "03:30 CEST"


def test_split_shift_and_saturday_calendar() -> None:
    split = config_with(business_hours='{mon-fri: ["09:00-13:00", "15:00-19:00"], '
                                       'sat: "10:00-14:00"}').calendar
    assert not is_business_time(split, madrid(2026, 3, 6, 14))
    assert add_business_time(split, madrid(2026, 3, 6, 12), 2 * H) == madrid(2026, 3, 6, 16)
    assert add_business_time(split, madrid(2026, 3, 6, 18), 2 * H) == madrid(2026, 3, 7, 11)


def test_day_lists_and_ranges_merge() -> None:
    config = config_with(business_hours='{"mon,wed": "09:00-12:00", wed-thu: "15:00-17:00"}')
    assert [len(day) for day in config.business_hours.week] == [1, 0, 2, 1, 0, 0, 0]


IS_CASES = [
    ((2026, 3, 6, 9, 0), True),
    ((2026, 3, 6, 8, 59), False),
    ((2026, 3, 6, 18, 0), False),
    ((2026, 3, 7, 12, 0), False),
    ((2026, 12, 25, 12, 0), False),
]


@pytest.mark.parametrize(("at", "expected"), IS_CASES)
def test_is_business_time(at: tuple, expected: bool) -> None:
    assert is_business_time(config_with().calendar, madrid(*at)) is expected


def test_business_time_between_is_the_inverse() -> None:
    calendar = config_with().calendar
    start = madrid(2026, 3, 6, 17, 30)
    for hours in (0.5, 2, 9, 30):
        due = add_business_time(calendar, start, timedelta(hours=hours))
        assert business_time_between(calendar, start, due) == timedelta(hours=hours)
    assert business_time_between(calendar, start, start - H) == timedelta(0)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_time(config_with().calendar, datetime(2026, 3, 6, 10), H)

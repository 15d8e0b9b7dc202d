"""Weekly opening hours as admins write them: `mon-fri: "09:00-18:00"`, split shifts as lists."""

from __future__ import annotations

import re
from dataclasses import dataclass

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")


@dataclass(frozen=True, order=True)
class TimeRange:
    """A span of one day in minutes after local midnight; end may be 1440 (`24:00`)."""

    start: int
    end: int

    def contains(self, minute: int) -> bool:
        return self.start <= minute < self.end

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_days(key: object) -> tuple[int, ...]:
    """Return weekday numbers (Monday 0) for `mon-fri`, `sat`, `mon,wed`; raise ValueError."""
    days: list[int] = []
    for part in str(key).lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ValueError(
                f"unknown day {key!r}: use mon..sun, a range like mon-fri or a list like mon,wed"
            )
        start, end = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        if end < start:
            raise ValueError(f"day range {part!r} runs backwards: write it as {last}-{first}?")
        days.extend(range(start, end + 1))
    return tuple(sorted(set(days)))


def parse_ranges(value: object) -> tuple[TimeRange, ...]:
    """Return the ranges of `"09:00-18:00"` or a list of them; raise ValueError."""
    items = value if isinstance(value, list) else [value]
    ranges = tuple(sorted(_parse_range(item) for item in items))
    for before, after in zip(ranges, ranges[1:], strict=False):
        if after.start < before.end:
            raise ValueError(f"time ranges {before} and {after} overlap")
    return ranges


def _parse_range(item: object) -> TimeRange:
    match = _RANGE.fullmatch(item.strip()) if isinstance(item, str) else None
    if match is None:
        raise ValueError(f"invalid hours {item!r}: write them like \"09:00-18:00\"")
    sh, sm, eh, em = (int(group) for group in match.groups())
    start, end = sh * 60 + sm, eh * 60 + em
    if sm > 59 or em > 59 or start >= 1440 or end > 1440:
        raise ValueError(f"invalid hours {item!r}: times go from 00:00 to 24:00")
    if end <= start:
        raise ValueError(f"invalid hours {item!r}: the end must be after the start "
                         "(split overnight shifts into two days)")
    return TimeRange(start, end)


def build_week(
    spec: dict[tuple[int, ...], tuple[TimeRange, ...]],
) -> tuple[tuple[TimeRange, ...], ...]:
    """Return seven tuples of ranges (Monday first) merged from day-set keys."""
    week: list[list[TimeRange]] = [[] for _ in DAY_NAMES]
    for days, ranges in spec.items():
        for day in days:
            week[day].extend(ranges)
    return tuple(tuple(sorted(set(day))) for day in week)


def describe_day(ranges: tuple[TimeRange, ...]) -> str:
    """Return "08:00-16:00" / "09:00-13:00, 15:00-19:00" / "off"."""
    return ", ".join(str(r) for r in ranges) if ranges else "off"

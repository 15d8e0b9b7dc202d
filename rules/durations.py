"""Durations as admins write them (`15m`, `1h30m`) and as humans read them."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNITS = ("days", "hours", "minutes", "seconds")


def parse_duration(value: object) -> timedelta:
    """Return the timedelta for `15m`, `2h`, `1d`, `90s`, `1h30m`; raise ValueError otherwise."""
    if isinstance(value, timedelta):
        return value
    text = str(value).strip().lower() if isinstance(value, str) else ""
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(
            f"invalid duration {value!r}: write it like 15m, 2h, 1d, 90s or 1h30m"
        )
    parts = {unit: int(amount) for unit, amount in zip(_UNITS, match.groups(), strict=True)
             if amount}
    return timedelta(**parts)


def format_duration(td: timedelta) -> str:
    """Return human text such as "15 min", "2 h", "1 h 30 min", "1 d" (seconds dropped
    unless the whole duration is under a minute)."""
    total = int(td.total_seconds())
    if total < 60:
        return f"{max(total, 0)} s"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    pieces = [f"{days} d" if days else "", f"{hours} h" if hours else "",
              f"{minutes} min" if minutes else ""]
    return " ".join(piece for piece in pieces if piece)

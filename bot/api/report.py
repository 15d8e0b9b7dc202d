"""`GET /report?since=7d`: the KPI report, as `opsbot report --json` prints it."""

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from bot.api.auth import Caller, require, services_of
from bot.api.problems import Problem
from store.reports import Report, build_report, report_as_dict
from store.types import utcnow

_RELATIVE = re.compile(r"^\s*(\d{1,5})\s*([dh])\s*$", re.IGNORECASE)
_SINCE_HELP = "write it as 7d, 24h, 30d or an ISO date such as 2026-11-01"

router = APIRouter(tags=["report"])


@router.get("/report", response_model=Report)
def show_report(
    request: Request,
    caller: Annotated[Caller, Depends(require("tasks:read"))],
    since: Annotated[str, Query(max_length=40, description="7d, 24h or an ISO date (UTC).")]
    = "7d",
):
    """KPIs of the window: volumes, response times, SLA, backlog, agents, automation."""
    services = services_of(request)
    now = utcnow()
    start = parse_since(since, now=now)
    minutes = services.rules.current.minutes_saved_per_task
    with services.db.transaction(readonly=True) as session:
        result = build_report(session, since=start, until=now, minutes_per_task=minutes)
    return report_as_dict(result)


def parse_since(text: str, *, now: datetime) -> datetime:
    """The start of the window (as `opsbot report --since`); a 422 problem otherwise."""
    match = _RELATIVE.match(text)
    if match and int(match.group(1)) > 0:
        amount, unit = int(match.group(1)), match.group(2).lower()
        return now - (timedelta(days=amount) if unit == "d" else timedelta(hours=amount))
    try:
        since = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Problem(422, f"since: {text!r} is not a period or a date; {_SINCE_HELP}") from None
    since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
    if since >= now:
        raise Problem(422, f"since: {text!r} is not in the past; {_SINCE_HELP}")
    return since

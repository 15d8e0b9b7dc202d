"""`GET /report?since=7d`: the KPI report, as `opsbot report --json` prints it."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from bot.api.auth import Caller, require, services_of
from bot.api.problems import Problem
from store.reports import Report, build_report, report_as_dict, report_start
from store.types import utcnow

router = APIRouter(tags=["report"])


@router.get("/report", response_model=Report)
def show_report(
    request: Request,
    caller: Annotated[Caller, Depends(require("tasks:read"))],
    since: Annotated[str, Query(max_length=40, description="7d, 24h or an ISO date (UTC).")]
    = "7d",
):
    """KPIs of the window: volumes, response times, SLA, backlog, agents, automation,
    ratings, and the surveys' response rate and CSAT (fractions 0–1, null when nothing was
    sent or answered) overall and by agent, team and category."""
    services = services_of(request)
    now = utcnow()
    try:
        start = report_start(since, now=now)
    except ValueError as exc:
        raise Problem(422, f"since: {exc}") from None
    minutes = services.rules.current.minutes_saved_per_task
    with services.db.transaction(readonly=True) as session:
        result = build_report(session, since=start, until=now, minutes_per_task=minutes)
    return report_as_dict(result)


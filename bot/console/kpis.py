"""The KPIs: a period, filters, seven figures with a one-line explanation each (the
surveys' response rate and CSAT as tables per agent, team and category), the tasks behind
any bar, and a CSV of the period's tasks.

The figures are plain tables that read without JavaScript; Chart.js draws them as plots from
the same numbers (`kpis.html` embeds them as JSON). A viewer who is not an admin sees the
figures of their own teams only.
"""

import csv
import io
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from bot.console.auth import Refused, Viewer, services_of, signed_in
from bot.console.pages import render
from rules.enums import Category
from store.kpis import KpiFilters, Period, compute_kpis, kpi_csv_rows, list_kpi_tasks, period_from
from store.satisfaction import SURVEYS_EXPLAIN
from store.types import utcnow

router = APIRouter()
Signed = Annotated[Viewer, Depends(signed_in)]
PERIODS = (("today", "Today"), ("7d", "7 days"), ("30d", "30 days"), ("custom", "Custom"))
CSV_CHUNK = 1000  # rows per piece of the download
CSV_COLUMNS = ("ref", "created_at", "category", "priority", "team", "assignee", "status",
               "first_response_seconds", "resolution_seconds", "sla_outcome", "rating",
               "automated")


@dataclass(frozen=True)
class Query:
    """What the KPI pages were asked for, once checked against the viewer's reach."""

    period_name: str
    start: str
    end: str
    period: Period
    filters: KpiFilters
    teams: list[str]  # the teams the viewer may pick (all of them for an admin)

    def params(self) -> dict[str, str]:
        """The query string that asks for the same again (links to the tasks behind a bar,
        the CSV)."""
        values = {"period": self.period_name, "from": self.start, "to": self.end,
                  **{k: v for k, v in asdict(self.filters).items() if v}}
        return {key: value for key, value in values.items() if value}


def _query(request: Request, viewer: Viewer) -> Query:
    services = services_of(request)
    config = services.rules.current
    args = request.query_params
    name = args.get("period") or "7d"
    start, end = args.get("from", ""), args.get("to", "")
    try:
        period = period_from(name, now=utcnow(), tz=config.timezone, start=start or None,
                             end=end or None)
    except ValueError as exc:
        raise Refused(400, f"That period does not work: {exc}.") from None
    teams = sorted(config.teams) if viewer.is_admin else sorted(viewer.actor.all_teams)
    team = args.get("team") or None
    if not viewer.is_admin:
        if not teams:
            raise Refused(403, "You belong to no team, so there are no figures for you yet.")
        if team not in teams:
            team = teams[0]  # never the whole business for someone who sees one team
    filters = KpiFilters(team=team, agent=args.get("agent") or None,
                         category=args.get("category") or None)
    return Query(name, start, end, period, filters, teams)


@router.get("/kpis", name="kpis_page")
def kpis_page(request: Request, viewer: Signed) -> Response:
    services = services_of(request)
    config = services.rules.current
    query = _query(request, viewer)
    with services.db.transaction(readonly=True) as session:
        kpis = compute_kpis(session, period=query.period, filters=query.filters,
                            tz=config.timezone, now=utcnow(),
                            minutes_saved_per_task=config.minutes_saved_per_task)
    return render(request, "kpis.html", viewer=viewer, kpis=kpis, query=query,
                  periods=PERIODS, agents=sorted(a.id for a in config.agents),
                  categories=[category.value for category in Category],
                  charts=_charts(kpis), surveys_explain=SURVEYS_EXPLAIN)


def _charts(kpis) -> dict:
    """The figures as Chart.js wants them: labels, values and the key of each bar."""
    def bars(items):
        return {"labels": [b.label for b in items], "values": [b.count for b in items],
                "keys": [b.key for b in items]}
    sla = kpis.sla.points
    return {
        "first_response": bars(kpis.first_response.buckets),
        "sla": {"labels": [p.key for p in sla], "keys": [p.key for p in sla],
                "values": [None if p.share is None else round(p.share * 100, 1) for p in sla]},
        "backlog": bars(kpis.backlog.points),
        "volume": bars(kpis.volume.hours),
        "csat": bars(kpis.csat.distribution),
    }


@router.get("/kpis/tasks", name="kpi_tasks_page")
def kpi_tasks_page(request: Request, viewer: Signed, figure: str, key: str) -> Response:
    """The tasks behind one bar of a figure."""
    services = services_of(request)
    query = _query(request, viewer)
    with services.db.transaction(readonly=True) as session:
        try:
            tasks = list_kpi_tasks(session, period=query.period, filters=query.filters,
                                   figure=figure, key=key, tz=services.rules.current.timezone,
                                   now=utcnow())
        except ValueError as exc:
            raise Refused(400, str(exc)) from None
    return render(request, "kpi_tasks.html", viewer=viewer, tasks=tasks, figure=figure,
                  key=key, query=query)


@router.get("/kpis.csv", name="kpi_csv")
def kpi_csv(request: Request, viewer: Signed) -> Response:
    """One row per task created in the period (no customer data), as a download."""
    services = services_of(request)
    query = _query(request, viewer)
    with services.db.transaction(readonly=True) as session:
        rows = list(kpi_csv_rows(session, period=query.period, filters=query.filters,
                                 tz=services.rules.current.timezone, now=utcnow()))
    name = f"opsbot-tasks-{query.period.since:%Y%m%d}-{query.period.until:%Y%m%d}.csv"
    return StreamingResponse(_csv(rows), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _csv(rows: list[dict]) -> Iterator[str]:
    """The CSV text in chunks of CSV_CHUNK rows (a chunk per row costs the response a send
    per row: seconds for a month)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for start in range(0, len(rows), CSV_CHUNK):
        writer.writerows(rows[start:start + CSV_CHUNK])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
    yield out.getvalue()

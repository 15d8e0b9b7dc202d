"""`opsbot report`: the KPIs of a window of the audit trail, as text or JSON."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer

from bot.cli.support import load_settings, open_existing_database
from bot.core.settings import Settings
from rules import RulesError, load_rules
from store.reports import (
    DurationStats,
    Report,
    SlaShare,
    build_report,
    report_as_dict,
    report_start,
)
from store.satisfaction import SurveyRow
from store.types import utcnow

DEFAULT_MINUTES_PER_TASK = 5.0


def parse_since(text: str, *, now: datetime) -> datetime:
    """`store.reports.report_start` for `--since`: typer.BadParameter says what to write."""
    try:
        return report_start(text, now=now)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def report(
    since: Annotated[
        str, typer.Option(help="Start of the window: 7d, 24h, 30d or an ISO date (UTC).")
    ] = "7d",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    minutes_per_task: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Manual minutes one automated task saves "
            "(default: rules.yaml minutes_saved_per_task, else 5).",
        ),
    ] = None,
) -> None:
    """KPIs from the audit trail: volumes, response times, SLA, backlog, agents, automation,
    ratings, and the surveys' response rate and CSAT per agent, team and category."""
    now = utcnow()
    start = _since_option(since, now)
    settings = load_settings()
    minutes = minutes_per_task if minutes_per_task is not None else _rules_minutes(settings)
    database = open_existing_database(settings)
    try:
        with database.transaction() as session:
            result = build_report(session, since=start, until=now, minutes_per_task=minutes)
    finally:
        database.dispose()
    if as_json:
        typer.echo(json.dumps(report_as_dict(result), indent=2, ensure_ascii=False))
    else:
        typer.echo(render_report(result))


def _since_option(text: str, now: datetime) -> datetime:
    try:
        return parse_since(text, now=now)
    except typer.BadParameter as exc:
        exc.param_hint = "'--since'"
        raise


def _rules_minutes(settings: Settings) -> float:
    """minutes_saved_per_task from the rules file; 5 when there is no rules file."""
    if not settings.rules_path.exists():
        return DEFAULT_MINUTES_PER_TASK
    try:
        return load_rules(settings.rules_path).minutes_saved_per_task
    except RulesError as exc:
        typer.echo(
            f"opsbot: cannot read minutes_saved_per_task; fix the rules file or pass "
            f"--minutes-per-task N:\n{exc}",
            err=True,
        )
        raise typer.Exit(2) from exc


def render_report(report: Report) -> str:
    """The report as aligned plain text, section by section."""
    sections = [
        _header(report),
        _created_section(report),
        _times_section(report),
        _sla_section(report),
        _alerts_section(report),
        _backlog_section(report),
        _agents_section(report),
        _automation_section(report),
        _satisfaction_section(report),
        _surveys_section(report),
    ]
    return "\n\n".join(sections)


def _header(report: Report) -> str:
    window = report.window
    return (
        f"opsbot report: {window.since:%Y-%m-%d %H:%M} to {window.until:%Y-%m-%d %H:%M} UTC\n"
        "Task figures are about the tasks created in the window; reminders, escalations,\n"
        "work per agent and ratings count what happened in it."
    )


def _created_section(report: Report) -> str:
    created = report.created
    rows = [["Tasks created", "", str(created.total)]]
    for label, counts in (("by category", created.by_category), ("by channel", created.by_channel)):
        for index, (name, count) in enumerate(counts.items()):
            rows.append([f"  {label}" if index == 0 else "", name, str(count)])
    return _table(rows, "llr")


def _times_section(report: Report) -> str:
    rows = [["Response times", "tasks", "mean", "median"]]
    for label, stats in (
        ("  first response", report.first_response),
        ("  time to accept", report.accept),
        ("  resolution", report.resolution),
    ):
        rows.append([label, *_stats_cells(stats)])
    note = (
        "first response = the first reply a person sent the customer (WhatsApp accepted it);\n"
        "the automatic acknowledgement does not count, nor does accepting the task"
    )
    return _table(rows) + "\n" + note


def _stats_cells(stats: DurationStats) -> list[str]:
    return [
        str(stats.count),
        format_seconds(stats.mean_seconds),
        format_seconds(stats.median_seconds),
    ]


def _sla_section(report: Report) -> str:
    sla = report.sla
    rows = [["Within SLA", "share", "within", "breached", "pending", "no SLA"]]
    rows.append(["  overall", *_share_cells(sla.overall)])
    for label, groups in (
        ("category", sla.by_category),
        ("team", sla.by_team),
        ("agent", sla.by_agent),
    ):
        rows.extend([f"  {label} {name}", *_share_cells(share)] for name, share in groups.items())
    note = (
        "within = first response by its due time and resolved by its due time; an unanswered or\n"
        "unresolved task counts as breached once its due time has passed, before that as pending\n"
        "(left out of the share, like tasks without an SLA)"
    )
    return _table(rows) + "\n" + note


def _share_cells(share: SlaShare) -> list[str]:
    counts = (share.within, share.breached, share.pending, share.no_sla)
    return [format_percent(share.share), *(str(count) for count in counts)]


def _alerts_section(report: Report) -> str:
    alerts = report.alerts
    rows = [
        ["Reminders sent", str(alerts.reminders), _breakdown(alerts.reminders_by_kind)],
        ["Escalations", str(alerts.escalations), _breakdown(alerts.escalations_by_step)],
        ["Offers expired", str(alerts.offers_expired), ""],
        ["Arrived late", str(alerts.arrived_late), ""],
        ["WhatsApp errors", str(sum(alerts.whatsapp_errors.values())),
         _breakdown(alerts.whatsapp_errors)],
    ]
    return _table(rows, "lrl")


def _breakdown(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items())


def _backlog_section(report: Report) -> str:
    rows = [["Backlog (open tasks)", "now", str(report.backlog.now)]]
    for index, day in enumerate(report.backlog.by_day):
        label = "  at the end of each day" if index == 0 else ""
        rows.append([label, day.date.isoformat(), str(day.open)])
    return _table(rows, "llr")


def _agents_section(report: Report) -> str:
    if not report.agents:
        return "Tasks per agent: none in this window"
    rows = [["Tasks per agent", "assigned", "accepted", "closed"]]
    for agent, work in report.agents.items():
        rows.append([f"  {agent}", str(work.assigned), str(work.accepted), str(work.closed)])
    return _table(rows)


def _automation_section(report: Report) -> str:
    auto = report.automation
    return _table(
        [
            ["Automation share", format_percent(auto.share),
             f"{auto.automated} of {auto.created} tasks created and routed with no human step"],
            ["Manual hours saved", f"{auto.hours_saved:.2f} h",
             f"{auto.automated} tasks x {auto.minutes_per_task:g} min"],
        ],
        "lrl",
    )  # fmt: skip


def _satisfaction_section(report: Report) -> str:
    rated = report.satisfaction
    if not rated.count:
        return "Satisfaction: no ratings yet"
    spread = "  ".join(f"{score}: {count}" for score, count in rated.distribution.items())
    summary = f"{rated.count} ratings, CSAT {format_percent(rated.csat)} ({spread})"
    return _table([["Satisfaction", f"{rated.mean:.2f} / 5", summary]], "lrl")


def _surveys_section(report: Report) -> str:
    surveys = report.surveys
    if not surveys.overall.sent:
        return "Surveys: none sent in this window"
    rows = [["Surveys", "sent", "answered", "response rate", "CSAT"]]
    rows.append(["  overall", *_survey_cells(surveys.overall)])
    for label, groups in (
        ("agent", surveys.by_agent),
        ("team", surveys.by_team),
        ("category", surveys.by_category),
    ):
        rows.extend([f"  {label} {row.name}", *_survey_cells(row)] for row in groups)
    note = (
        "of the surveys sent in the window (skipped and failed ones are not sent): response rate\n"
        "= answered by its end / sent; CSAT = answers counted as satisfied / answers; agent,\n"
        "team and category as they were when the task closed"
    )
    return _table(rows) + "\n" + note


def _survey_cells(row: SurveyRow) -> list[str]:
    return [str(row.sent), str(row.answered), format_percent(row.response_rate),
            format_percent(row.csat)]


def format_seconds(seconds: float | None) -> str:
    """`2 h 5 min 30 s` (rounded to the second); `-` when there is nothing to measure."""
    if seconds is None:
        return "-"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = ((days, "d"), (hours, "h"), (minutes, "min"), (secs, "s"))
    return " ".join(f"{amount} {unit}" for amount, unit in units if amount) or "0 s"


def format_percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f} %"


def _table(rows: list[list[str]], align: str = "") -> str:
    """Rows as aligned columns; `align` gives l or r per column (default: l, then r)."""
    count = max(map(len, rows))
    align = (align or "l").ljust(count, "r")
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(count)]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(widths[i]) if align[i] == "l" else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)

"""The web console's KPI figures over a period: each as plain data a page can plot, each
bar with a key that `list_kpi_tasks` turns back into the tasks behind it.

The definitions are store.reports' (SLA outcome, automation, satisfaction, backlog): with
the business timezone UTC, the figures equal `compute_report`'s on the same data. The rows
are read with a few narrow queries and bucketed here, the same on SQLite and PostgreSQL.
"""

import re
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row, Text, and_, case, func, or_, select, type_coerce
from sqlalchemy.orm import Session

from store.events import Audit
from store.lifecycle import Action
from store.models import OPEN_STATUSES, Task, TaskEvent
from store.reports import (
    RATING_SCALE,
    UNASSIGNED,
    TaskRow,
    duration_stats,
    sla_outcome,
    sla_share,
)

PERIOD_HELP = "write today, 7d or 30d, or give the first and last day (YYYY-MM-DD)"
_RELATIVE_DAYS = re.compile(r"^\s*(\d{1,4})d\s*$", re.IGNORECASE)
WEEKLY_AFTER_DAYS = 31  # a longer period plots its SLA share per ISO week: days get unreadable
GOOD_RATING = 4  # CSAT counts ratings of 4 and 5 as satisfied (the usual top-two-box)
FIRST_RESPONSE_BUCKETS = (  # key, label, upper bound in seconds (exclusive)
    ("lt5m", "< 5 min", 5 * 60), ("5-15m", "5–15 min", 15 * 60),
    ("15-30m", "15–30 min", 30 * 60), ("30-60m", "30–60 min", 3600),
    ("1-4h", "1–4 h", 4 * 3600), ("4-24h", "4–24 h", 24 * 3600),
    ("gt24h", "> 24 h", None),
)
NO_RESPONSE = "none"
_BOUNDS = [bound for _key, _label, bound in FIRST_RESPONSE_BUCKETS if bound is not None]


@dataclass(frozen=True)
class Period:
    since: datetime  # UTC, included
    until: datetime  # UTC, included


@dataclass(frozen=True)
class KpiFilters:
    team: str | None = None
    agent: str | None = None  # an assignee id, or reports.UNASSIGNED
    category: str | None = None


@dataclass(frozen=True)
class KpiTask(TaskRow):
    """A task as the KPIs read it: reports.TaskRow and what the console adds."""

    priority: str = ""
    sla_started_at: datetime | None = None


@dataclass(frozen=True)
class Bar:
    key: str  # for list_kpi_tasks
    label: str
    count: int


@dataclass(frozen=True)
class FirstResponseFigure:
    buckets: list[Bar]
    median_seconds: float | None
    explain: str


@dataclass(frozen=True)
class SlaPoint:
    key: str  # the day (2026-11-20) or ISO week (2026-W47) the tasks were created in
    within: int
    breached: int
    pending: int
    share: float | None


@dataclass(frozen=True)
class SlaFigure:
    per: str  # "day" or "week"
    points: list[SlaPoint]
    share: float | None  # of the whole period
    explain: str


@dataclass(frozen=True)
class BacklogFigure:
    points: list[Bar]  # key: the day (business timezone); count: open at its end
    explain: str


@dataclass(frozen=True)
class VolumeFigure:
    hours: list[Bar]  # key "0" … "23", business timezone
    explain: str


@dataclass(frozen=True)
class CsatFigure:
    answered: int
    distribution: list[Bar]  # key "1" … "5"
    csat_percent: float | None
    mean: float | None
    explain: str


@dataclass(frozen=True)
class HoursSaved:
    automated: int
    created: int
    minutes_per_task: float
    hours: float
    explain: str


@dataclass(frozen=True)
class Kpis:
    period: Period
    created: int
    first_response: FirstResponseFigure
    sla: SlaFigure
    backlog: BacklogFigure
    volume: VolumeFigure
    csat: CsatFigure
    hours_saved: HoursSaved


def period_from(text: str, *, now: datetime, tz: str, start: date | str | None = None,
                end: date | str | None = None) -> Period:
    """The period `text` names: "today" (since local midnight in `tz`), "7d", "30d" (the
    last 7 or 30 days up to `now`) or "custom" (from local midnight of `start` to the end of
    `end`, not beyond `now`). Raises ValueError with what to write instead."""
    zone = ZoneInfo(tz)
    word = text.strip().lower()
    if word == "today":
        midnight = datetime.combine(now.astimezone(zone).date(), time(), tzinfo=zone)
        return Period(midnight.astimezone(UTC), now)
    relative = _RELATIVE_DAYS.match(word)
    if relative and int(relative.group(1)) > 0:
        return Period(now - timedelta(days=int(relative.group(1))), now)
    if word == "custom" and start is not None and end is not None:
        first, last = _day(start), _day(end)
        if last < first:
            raise ValueError(f"the period ends ({last}) before it starts ({first})")
        since = datetime.combine(first, time(), tzinfo=zone).astimezone(UTC)
        after = datetime.combine(last + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
        return Period(since, min(after - timedelta(microseconds=1), now))
    raise ValueError(f"{text!r} is not a period; {PERIOD_HELP}")


def _day(value: date | str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a day; {PERIOD_HELP}") from None


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Facts:
    """What every figure is computed from: read once per request."""

    period: Period
    zone: ZoneInfo
    at: datetime  # when outcomes are judged: the period's end, not beyond now
    weekly: bool  # the SLA share is plotted per ISO week (a long period), else per day
    tasks: Sequence[Row]  # created in the period, or open at some time in it
    cohort: list[Row]  # created in the period
    open_spans: dict[int, list[tuple[datetime, datetime | None]]]
    automated: frozenset[int]
    ratings: dict[int, int]  # the rating that counts, per rated task


# The figures read these few columns of each task (narrow rows: a month is ~10,000 of them);
# the lists and the CSV read all of KpiTask's.
_FIGURE_COLUMNS = (Task.id, Task.status, Task.created_at, Task.first_response_at,
                   Task.first_response_due, Task.resolved_at, Task.resolution_due,
                   Task.sla_started_at, Task.rating)
_LIST_COLUMNS = (*_FIGURE_COLUMNS, Task.category, Task.channel, Task.team, Task.assignee_id,
                 Task.priority)
_MANUAL_STEPS = (str(Audit.CREATED), str(Action.ASSIGN), str(Action.REASSIGN))  # by a person
_ROUTING_STEPS = (*_MANUAL_STEPS, str(Audit.ROUTED), str(Action.ACCEPT))


def _filtered(filters: KpiFilters) -> list:
    conditions = []
    if filters.team:
        conditions.append(Task.team == filters.team)
    if filters.category:
        conditions.append(Task.category == filters.category)
    if filters.agent == UNASSIGNED:
        conditions.append(Task.assignee_id.is_(None))
    elif filters.agent:
        conditions.append(Task.assignee_id == filters.agent)
    return conditions


def _load_facts(session: Session, period: Period, filters: KpiFilters, tz: str, now: datetime,
                columns: Sequence = _FIGURE_COLUMNS) -> _Facts:
    # Open at some time in the period: created by its end and not resolved before it began
    # (a reopened task has no resolved_at, or a later one). Each arm has its index.
    touching = and_(Task.created_at <= period.until,
                    or_(Task.created_at >= period.since, Task.status.in_(sorted(OPEN_STATUSES)),
                        Task.resolved_at >= period.since))
    tasks = session.execute(select(*columns).where(touching, *_filtered(filters))).all()
    cohort = [task for task in tasks if period.since <= task.created_at <= period.until]
    cohort_ids = {task.id for task in cohort}
    weekly = period.until - period.since > timedelta(days=WEEKLY_AFTER_DAYS)
    return _Facts(period=period, zone=ZoneInfo(tz), at=min(period.until, now), weekly=weekly,
                  tasks=tasks,
                  cohort=cohort, open_spans=_open_spans(session, tasks, period.until),
                  automated=_automated(session, period) & cohort_ids,
                  ratings=_ratings(session, period, filters, cohort))


def _open_spans(session: Session, tasks: Sequence,
                until: datetime) -> dict[int, list[tuple[datetime, datetime | None]]]:
    """When each task was open: from its creation to its resolution (or closing, which sets
    resolved_at too), except for a reopened task, whose transitions are replayed."""
    spans: dict[int, list[tuple[datetime, datetime | None]]] = {}
    replay = []
    for task in tasks:
        if task.sla_started_at is not None or (task.status not in OPEN_STATUSES
                                               and task.resolved_at is None):
            replay.append(task.id)
        else:
            spans[task.id] = [(task.created_at, task.resolved_at)]
    if replay:
        query = (select(TaskEvent.task_id, TaskEvent.at, TaskEvent.to_status)
                 .where(TaskEvent.task_id.in_(replay), TaskEvent.to_status.is_not(None),
                        TaskEvent.at <= until).order_by(TaskEvent.at, TaskEvent.id))
        spans.update(_replayed(session.execute(query).all()))
    return spans


def _replayed(changes: Sequence) -> dict[int, list[tuple[datetime, datetime | None]]]:
    spans: dict[int, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    opened: dict[int, datetime] = {}
    for change in changes:
        is_open = change.to_status in OPEN_STATUSES
        if is_open and change.task_id not in opened:
            opened[change.task_id] = change.at
        elif not is_open and change.task_id in opened:
            spans[change.task_id].append((opened.pop(change.task_id), change.at))
    for task_id, since in opened.items():
        spans[task_id].append((since, None))
    return spans


def _automated(session: Session, period: Period) -> frozenset[int]:
    """Of the tasks with routing steps in the period (those created in it have all theirs
    there), those reports.is_automated counts: routed automatically before their first
    acceptance, and not created, assigned or reassigned by a person before it (two steps at
    the very same instant as the acceptance count as after it). One GROUP BY in the
    database: reading a month of routing events into Python took most of the page's time."""
    def first(condition) -> Any:
        return func.min(case((condition, TaskEvent.at), else_=None))

    # canonical JSON (store.events.encode_details): a top-level `"automatic": true` reads so
    routed = first(and_(TaskEvent.action == Audit.ROUTED,
                        type_coerce(TaskEvent.details, Text).like('%"automatic":true%')))
    manual = first(and_(TaskEvent.action.in_(_MANUAL_STEPS), TaskEvent.actor.like("agent:%")))
    accepted = first(TaskEvent.action == Action.ACCEPT)
    query = (select(TaskEvent.task_id)
             .where(TaskEvent.action.in_(_ROUTING_STEPS),
                    TaskEvent.at.between(period.since, period.until))
             .group_by(TaskEvent.task_id)
             .having(routed.is_not(None), or_(accepted.is_(None), routed < accepted),
                     or_(manual.is_(None), and_(accepted.is_not(None), manual >= accepted))))
    return frozenset(session.scalars(query))


def _ratings(session: Session, period: Period, filters: KpiFilters,
             cohort: Sequence) -> dict[int, int]:
    """As reports counts them: a task's latest `rated` event in the period; a task of the
    period rated without any `rated` event (its events all fall in the period), its stored
    rating."""
    rated = (select(TaskEvent.task_id, TaskEvent.details)
             .where(TaskEvent.action == Audit.RATED,
                    TaskEvent.at.between(period.since, period.until))
             .order_by(TaskEvent.at, TaskEvent.id))
    conditions = _filtered(filters)
    if conditions:
        rated = rated.join(Task, Task.id == TaskEvent.task_id).where(*conditions)
    ratings: dict[int, Any] = {row.task_id: (row.details or {}).get("rating")
                               for row in session.execute(rated)}
    for task in cohort:
        if task.rating is not None and task.id not in ratings:
            ratings[task.id] = task.rating
    return {task_id: rating for task_id, rating in ratings.items()
            if type(rating) is int and rating in RATING_SCALE}


# --- figures ----------------------------------------------------------------------------------


def compute_kpis(session: Session, *, period: Period, filters: KpiFilters, tz: str,
                 minutes_saved_per_task: float, now: datetime) -> Kpis:
    """The console's KPI figures of the tasks passing `filters` in `period`; days and hours
    in the business timezone `tz`."""
    facts = _load_facts(session, period, filters, tz, now)
    return Kpis(period=period, created=len(facts.cohort),
                first_response=_first_response(facts), sla=_sla(facts),
                backlog=_backlog(facts), volume=_volume(facts), csat=_csat(facts),
                hours_saved=_hours_saved(facts, minutes_saved_per_task))


def _response_bucket(task: Row) -> str:
    if task.first_response_at is None:
        return NO_RESPONSE
    seconds = (task.first_response_at - task.created_at).total_seconds()
    return FIRST_RESPONSE_BUCKETS[bisect_right(_BOUNDS, seconds)][0]


def _first_response(facts: _Facts) -> FirstResponseFigure:
    counts = Counter(_response_bucket(task) for task in facts.cohort)
    bars = [Bar(key, label, counts[key]) for key, label, _bound in FIRST_RESPONSE_BUCKETS]
    bars.append(Bar(NO_RESPONSE, "no response yet", counts[NO_RESPONSE]))
    median = duration_stats([task.first_response_at - task.created_at
                             for task in facts.cohort if task.first_response_at]).median_seconds
    return FirstResponseFigure(bars, median, "Tasks created in the period by the time from "
                               "creation to the first reply a person sent the customer "
                               "(the acknowledgement does not count); median of those answered.")


def _sla_key(facts: _Facts, task: Row) -> str:
    day = task.created_at.astimezone(facts.zone).date()
    if not facts.weekly:
        return day.isoformat()
    year, week, _weekday = day.isocalendar()
    return f"{year}-W{week:02d}"


def _sla(facts: _Facts) -> SlaFigure:
    outcomes = defaultdict(list)
    for task in facts.cohort:
        outcomes[_sla_key(facts, task)].append(sla_outcome(task, facts.at))
    points = []
    for key in sorted(outcomes):
        share = sla_share(outcomes[key])
        points.append(SlaPoint(key, share.within, share.breached, share.pending, share.share))
    overall = sla_share(outcome for found in outcomes.values() for outcome in found)
    return SlaFigure("week" if facts.weekly else "day", points, overall.share,
                     "Tasks created each day (each ISO week past 31 days): within SLA = "
                     "first reply and resolution each by its due time; share = within / "
                     "(within + breached), the ones not yet due left out.")


def _days(facts: _Facts) -> list[tuple[date, datetime]]:
    """Each day of the period in the business timezone, with the UTC instant it ends."""
    day, last = (facts.period.since.astimezone(facts.zone).date(),
                 facts.period.until.astimezone(facts.zone).date())
    days = []
    while day <= last:
        ends = datetime.combine(day + timedelta(days=1), time(), tzinfo=facts.zone)
        days.append((day, ends.astimezone(UTC)))
        day += timedelta(days=1)
    return days


def _open_at(spans: Sequence[tuple[datetime, datetime | None]], cut: datetime) -> bool:
    return any(start < cut and (end is None or end >= cut) for start, end in spans)


def _backlog(facts: _Facts) -> BacklogFigure:
    # A span ends after it starts: open at a cut = spans begun before it − spans ended before
    # it (two binary searches per day, whatever the number of tasks).
    spans = [span for task_spans in facts.open_spans.values() for span in task_spans]
    starts = sorted(start for start, _end in spans)
    ends = sorted(end for _start, end in spans if end is not None)
    points = [Bar(day.isoformat(), day.isoformat(),
                  bisect_left(starts, cut) - bisect_left(ends, cut))
              for day, cut in _days(facts)]
    return BacklogFigure(points, "Tasks open (new to waiting for the customer) at the end of "
                         "each day, replayed from their creation, resolution and reopenings.")


def _volume(facts: _Facts) -> VolumeFigure:
    counts = Counter(task.created_at.astimezone(facts.zone).hour for task in facts.cohort)
    return VolumeFigure([Bar(str(hour), f"{hour:02d}:00", counts[hour]) for hour in range(24)],
                        "Tasks created in the period by hour of the day (business timezone).")


def _csat(facts: _Facts) -> CsatFigure:
    counts = Counter(facts.ratings.values())
    answered = sum(counts.values())
    good = sum(counts[score] for score in RATING_SCALE if score >= GOOD_RATING)
    mean = sum(facts.ratings.values()) / answered if answered else None
    return CsatFigure(answered, [Bar(str(score), f"{score}★", counts[score])
                                 for score in RATING_SCALE],
                      100 * good / answered if answered else None, mean,
                      f"Ratings (1–5) given in the period; CSAT % = ratings of {GOOD_RATING} "
                      "or 5 / ratings answered; a task rated twice counts its latest rating.")


def _hours_saved(facts: _Facts, minutes_per_task: float) -> HoursSaved:
    automated = sum(1 for task in facts.cohort if task.id in facts.automated)
    return HoursSaved(automated, len(facts.cohort), minutes_per_task,
                      automated * minutes_per_task / 60,
                      f"Tasks created and routed with no person's step before acceptance × "
                      f"{minutes_per_task:g} minutes saved each, in hours.")


# --- the tasks behind a bar, and the CSV ------------------------------------------------------


def list_kpi_tasks(session: Session, *, period: Period, filters: KpiFilters, figure: str,
                   key: str, tz: str, now: datetime) -> list[KpiTask]:
    """The tasks behind one bar of a figure, by number: `first_response` (a bucket key),
    `sla` (a day or week, optionally `:within`/`:breached`/`:pending`/`:no_sla`), `backlog`
    (a day), `volume` (an hour), `csat` (a rating), `automated` (any key). Raises ValueError
    for an unknown figure."""
    pick = _PICKERS.get(figure)
    if pick is None:
        raise ValueError(f"unknown figure {figure!r}; one of {', '.join(sorted(_PICKERS))}")
    facts = _load_facts(session, period, filters, tz, now, _LIST_COLUMNS)
    return [KpiTask(**row._mapping) for row in sorted(pick(facts, key), key=lambda t: t.id)]


def _pick_response(facts: _Facts, key: str) -> list[Row]:
    return [task for task in facts.cohort if _response_bucket(task) == key]


def _pick_sla(facts: _Facts, key: str) -> list[Row]:
    period_key, _, outcome = key.partition(":")
    return [task for task in facts.cohort if _sla_key(facts, task) == period_key
            and (not outcome or sla_outcome(task, facts.at) == outcome)]


def _pick_backlog(facts: _Facts, key: str) -> list[Row]:
    cut = dict((day.isoformat(), cut) for day, cut in _days(facts)).get(key)
    if cut is None:
        return []
    return [task for task in facts.tasks if _open_at(facts.open_spans.get(task.id, ()), cut)]


def _pick_volume(facts: _Facts, key: str) -> list[Row]:
    return [task for task in facts.cohort
            if str(task.created_at.astimezone(facts.zone).hour) == key]


def _pick_csat(facts: _Facts, key: str) -> list[Row]:
    return [task for task in facts.tasks if str(facts.ratings.get(task.id)) == key]


def _pick_automated(facts: _Facts, _key: str) -> list[Row]:
    return [task for task in facts.cohort if task.id in facts.automated]


_PICKERS = {"first_response": _pick_response, "sla": _pick_sla, "backlog": _pick_backlog,
            "volume": _pick_volume, "csat": _pick_csat, "automated": _pick_automated}


def kpi_csv_rows(session: Session, *, period: Period, filters: KpiFilters, tz: str,
                 now: datetime) -> Iterator[dict[str, Any]]:
    """One row per task created in the period, oldest first, with no customer data: its
    figures as the KPIs count them (times in seconds, UTC instants in ISO 8601)."""
    facts = _load_facts(session, period, filters, tz, now, _LIST_COLUMNS)
    for task in sorted(facts.cohort, key=lambda task: (task.created_at, task.id)):
        yield {"ref": f"T-{task.id}", "created_at": task.created_at.isoformat(),
               "category": task.category, "priority": task.priority, "team": task.team,
               "assignee": task.assignee_id, "status": task.status,
               "first_response_seconds": _seconds(task.created_at, task.first_response_at),
               "resolution_seconds": _seconds(task.created_at, task.resolved_at),
               "sla_outcome": str(sla_outcome(task, facts.at)), "rating": task.rating,
               "automated": task.id in facts.automated}


def _seconds(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else (end - start).total_seconds()

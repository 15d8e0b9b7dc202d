"""The web console's KPI figures over a period: each as plain data a page can plot, each
bar with a key that `list_kpi_tasks` turns back into the tasks behind it.

The definitions are store.reports' (SLA outcome, automation, satisfaction, backlog): with
the business timezone UTC, the figures equal `compute_report`'s on the same data. One query
reads each task of the period as a few numbers the database works out (seconds since 1970,
its SLA outcome, and from the facts store.events keeps on the task as events are written,
whether it was automated and the rating that counts); they are bucketed here, the same on
SQLite and PostgreSQL. No audit event is read, but for the few tasks rated again after a
period in the past, and those reopened (their open spans are replayed).

Ratings and surveys are counted by store.satisfaction (one more grouped query for the
surveys); the period, filters and bars are store.figures', imported here for the callers.
"""

import re
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, and_, bindparam, case, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from store.figures import Bar, KpiFilters, Period, task_conditions
from store.models import OPEN_STATUSES, Task, TaskEvent
from store.reports import SlaOutcome, TaskRow, duration_stats, sla_share
from store.satisfaction import (
    CsatFigure,
    SurveyFigures,
    csat_figure,
    rating_that_counts,
    settle_ratings,
    survey_figures,
)
from store.types import UTCDateTime

PERIOD_HELP = "write today, 7d or 30d, or give the first and last day (YYYY-MM-DD)"
_RELATIVE_DAYS = re.compile(r"^\s*(\d{1,4})d\s*$", re.IGNORECASE)
WEEKLY_AFTER_DAYS = 31  # a longer period plots its SLA share per ISO week: days get unreadable
FIRST_RESPONSE_BUCKETS = (  # key, label, upper bound in seconds (exclusive)
    ("lt5m", "< 5 min", 5 * 60), ("5-15m", "5–15 min", 15 * 60),
    ("15-30m", "15–30 min", 30 * 60), ("30-60m", "30–60 min", 3600),
    ("1-4h", "1–4 h", 4 * 3600), ("4-24h", "4–24 h", 24 * 3600),
    ("gt24h", "> 24 h", None),
)
NO_RESPONSE = "none"
_BOUNDS = [bound for _key, _label, bound in FIRST_RESPONSE_BUCKETS if bound is not None]


@dataclass(frozen=True)
class KpiTask(TaskRow):
    """A task as the KPIs read it: reports.TaskRow and what the console adds."""

    priority: str = ""
    sla_started_at: datetime | None = None


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
    surveys: SurveyFigures


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


class _Epoch(FunctionElement):
    """A UTC instant as whole seconds since 1970, floored: exact on either backend (bars cut
    at whole seconds, so the fraction never moves a task to another bar)."""

    type = BigInteger()
    name = "epoch_seconds"
    inherit_cache = True


class _Micros(FunctionElement):
    """Microseconds from the first instant to the second: exact, as timedelta counts them."""

    type = BigInteger()
    name = "micros_between"
    inherit_cache = True


@compiles(_Epoch)
@compiles(_Micros)
def _named(element, compiler, **kw) -> str:  # printed statements; only the two below run
    return f"{element.name}({compiler.process(element.clauses, **kw)})"


@compiles(_Epoch, "postgresql")
def _epoch_postgresql(element, compiler, **kw) -> str:
    # date_part's double, not EXTRACT's numeric: a third cheaper, and exact to the second
    return f"CAST(FLOOR(date_part('epoch', {compiler.process(element.clauses, **kw)})) AS BIGINT)"


@compiles(_Epoch, "sqlite")
def _epoch_sqlite(element, compiler, **kw) -> str:
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(_Micros, "postgresql")
def _micros_postgresql(element, compiler, **kw) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    # an interval counts whole microseconds: its double is within far less than one of them
    return f"CAST(date_part('epoch', {end} - {start}) * 1000000 AS BIGINT)"


@compiles(_Micros, "sqlite")
def _micros_sqlite(element, compiler, **kw) -> str:
    # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff" (SQLAlchemy's format): whole seconds from
    # strftime, the microseconds from characters 21-26
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return (f"((strftime('%s', {end}) - strftime('%s', {start})) * 1000000"
            f" + CAST(substr({end}, 21, 6) AS INTEGER) - CAST(substr({start}, 21, 6) AS INTEGER))")


# A task as the figures read it: a plain tuple of the numbers the database works out, by
# these positions. Plain tuples of plain values leave the garbage collector's watch; 10,000
# named tuples (or a list per task) a request made it run a full collection every third
# request, ~100 ms each.
_ID = 0
_CREATED = 1  # UTC, whole seconds since 1970
_RESPONSE_US = 2  # creation → first response, or None
_RESOLVED = 3  # UTC seconds, or None
_REPLAY = 4  # its open spans are replayed from its transitions (see _open_spans)
_COHORT = 5  # created in the period
_SLA = 6  # reports.SlaOutcome at the period's end
_AUTOMATED = 7  # as reports.is_automated counts it (for the cohort)
_RATING = 8  # the rating that counts in the period, but for late ratings
_Fact = tuple  # of the above


class _LocalClock:
    """UTC seconds to the business timezone's wall clock (as seconds since 1970), one zone
    look-up per hour: astimezone per task took a third of the figures' time."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.offsets: dict[int, int | None] = {}  # per UTC hour; None: it holds a change

    def local(self, seconds: int) -> int:
        hour = seconds // 3600
        if hour not in self.offsets:
            first, last = (self._offset(hour * 3600 + second) for second in (0, 3599))
            self.offsets[hour] = first if first == last else None
        offset = self.offsets[hour]
        return seconds + (self._offset(seconds) if offset is None else offset)

    def _offset(self, seconds: int) -> int:
        return int(datetime.fromtimestamp(seconds, self.zone).utcoffset().total_seconds())

    def hour(self, seconds: int) -> int:
        return self.local(seconds) // 3600 % 24

    def day_number(self, seconds: int) -> int:
        return self.local(seconds) // 86400  # days since 1970-01-01

    def day(self, seconds: int) -> date:
        return _EPOCH_DAY + timedelta(days=self.day_number(seconds))


_EPOCH_DAY = date(1970, 1, 1)


@dataclass(frozen=True)
class _Facts:
    """What every figure is computed from: read once per request."""

    period: Period
    clock: _LocalClock
    at: datetime  # when outcomes are judged: the period's end, not beyond now
    weekly: bool  # the SLA share is plotted per ISO week (a long period), else per day
    tasks: list[_Fact]  # created in the period, open at some time in it, or rated in it
    cohort: list[_Fact]  # created in the period
    open_spans: list[tuple[int, int, int | None]]  # task, from, to (UTC seconds)
    ratings: dict[int, int]  # the rating that counts, per rated task


_LIST_COLUMNS = tuple(getattr(Task, field.name) for field in fields(KpiTask))  # in its order


def _deadline(done, due, at: Any) -> tuple:
    """reports._deadline_outcome in SQL: (breached, pending) of one due time."""
    breached = and_(due.is_not(None), or_(and_(done.is_not(None), done > due),
                                          and_(done.is_(None), due < at)))
    return breached, and_(due.is_not(None), done.is_(None), due >= at)


def _sla_outcome(at: Any) -> Any:
    """reports.sla_outcome in SQL, judged at `at` (tests/store/test_kpis.py compares them)."""
    response = _deadline(Task.first_response_at, Task.first_response_due, at)
    resolution = _deadline(Task.resolved_at, Task.resolution_due, at)
    return case((and_(Task.first_response_due.is_(None), Task.resolution_due.is_(None)),
                 str(SlaOutcome.NO_SLA)),
                (or_(response[0], resolution[0]), str(SlaOutcome.BREACHED)),
                (or_(response[1], resolution[1]), str(SlaOutcome.PENDING)),
                else_=str(SlaOutcome.WITHIN))


def _automated(until: Any) -> Any:
    """reports.is_automated from the facts store.events keeps on the task, as of `until`: an
    automatic routing before the first acceptance, no step of a person before it (two steps
    at the very same instant as the acceptance count as after it)."""
    accepted = and_(Task.first_accepted_at.is_not(None), Task.first_accepted_at <= until)
    return and_(Task.auto_routed_at <= until,
                or_(~accepted, Task.auto_routed_at < Task.first_accepted_at),
                or_(Task.manual_step_at.is_(None), Task.manual_step_at > until,
                    and_(accepted, Task.manual_step_at >= Task.first_accepted_at)))


def _inline(instant: datetime) -> Any:
    """`instant` written into the statement, not bound: PostgreSQL plans a statement run
    often (psycopg prepares it) once for any bounds, and that plan read the period's tasks
    3-7 times slower than one made for the bounds at hand."""
    return bindparam(None, instant, type_=UTCDateTime(), literal_execute=True)


def _load_facts(session: Session, period: Period, filters: KpiFilters, tz: str,
                now: datetime) -> _Facts:
    # Open at some time in the period: created by its end and not resolved before it began
    # (a reopened task has no resolved_at, or a later one), or rated in it. Each arm has its
    # index; a row is a few numbers (reading datetimes took a third of the time).
    since, until, at = _inline(period.since), _inline(period.until), min(period.until, now)
    touching = and_(Task.created_at <= until,
                    or_(Task.created_at >= since, Task.status.in_(sorted(OPEN_STATUSES)),
                        Task.resolved_at >= since, Task.last_rated_at.between(since, until)))
    cohort = Task.created_at.between(since, until)
    replay = or_(Task.sla_started_at.is_not(None),
                 and_(Task.status.not_in(sorted(OPEN_STATUSES)), Task.resolved_at.is_(None)))
    query = select(Task.id, _Epoch(Task.created_at), _Micros(Task.created_at,
                                                             Task.first_response_at),
                   _Epoch(Task.resolved_at), replay, cohort, _sla_outcome(_inline(at)),
                   _automated(until), rating_that_counts(since, until, cohort))
    tasks = [tuple(row) for row in session.execute(query.where(touching,
                                                               *task_conditions(filters)))]
    weekly = period.until - period.since > timedelta(days=WEEKLY_AFTER_DAYS)
    return _Facts(period=period, clock=_LocalClock(ZoneInfo(tz)), at=at, weekly=weekly,
                  tasks=tasks, cohort=[task for task in tasks if task[_COHORT]],
                  open_spans=_open_spans(session, tasks, period.until),
                  ratings=settle_ratings(session, period=period, filters=filters, counted={
                      task[_ID]: task[_RATING] for task in tasks if task[_RATING] is not None}))


def _open_spans(session: Session, tasks: Sequence[_Fact],
                until: datetime) -> list[tuple[int, int, int | None]]:
    """When each task was open: from its creation to its resolution (or closing, which sets
    resolved_at too), except for a reopened task, whose transitions are replayed."""
    spans = [(task[_ID], task[_CREATED], task[_RESOLVED]) for task in tasks if not task[_REPLAY]]
    replay = [task[_ID] for task in tasks if task[_REPLAY]]
    if replay:
        query = (select(TaskEvent.task_id, _Epoch(TaskEvent.at), TaskEvent.to_status)
                 .where(TaskEvent.task_id.in_(replay), TaskEvent.to_status.is_not(None),
                        TaskEvent.at <= until).order_by(TaskEvent.at, TaskEvent.id))
        spans += _replayed(session.execute(query))
    return spans


def _replayed(changes: Iterable[tuple[int, int, str]]) -> list[tuple[int, int, int | None]]:
    spans: list[tuple[int, int, int | None]] = []
    opened: dict[int, int] = {}
    for task_id, at, to_status in changes:
        is_open = to_status in OPEN_STATUSES
        if is_open and task_id not in opened:
            opened[task_id] = at
        elif not is_open and task_id in opened:
            spans.append((task_id, opened.pop(task_id), at))
    return spans + [(task_id, since, None) for task_id, since in opened.items()]


# --- figures ----------------------------------------------------------------------------------


def compute_kpis(session: Session, *, period: Period, filters: KpiFilters, tz: str,
                 minutes_saved_per_task: float, now: datetime) -> Kpis:
    """The console's KPI figures of the tasks passing `filters` in `period`; days and hours
    in the business timezone `tz`; the surveys' figures as store.satisfaction counts them."""
    facts = _load_facts(session, period, filters, tz, now)
    so_far = Period(period.since, facts.at)  # an answer still to come is not one yet
    return Kpis(period=period, created=len(facts.cohort),
                first_response=_first_response(facts), sla=_sla(facts),
                backlog=_backlog(facts), volume=_volume(facts), csat=csat_figure(facts.ratings),
                hours_saved=_hours_saved(facts, minutes_saved_per_task),
                surveys=survey_figures(session, period=so_far, filters=filters))


_BOUNDS_US = [bound * 1_000_000 for bound in _BOUNDS]


def _response_bucket(task: _Fact) -> str:
    if task[_RESPONSE_US] is None:
        return NO_RESPONSE
    return FIRST_RESPONSE_BUCKETS[bisect_right(_BOUNDS_US, task[_RESPONSE_US])][0]


def _first_response(facts: _Facts) -> FirstResponseFigure:
    counts = Counter(_response_bucket(task) for task in facts.cohort)
    bars = [Bar(key, label, counts[key]) for key, label, _bound in FIRST_RESPONSE_BUCKETS]
    bars.append(Bar(NO_RESPONSE, "no response yet", counts[NO_RESPONSE]))
    median = duration_stats([timedelta(microseconds=task[_RESPONSE_US]) for task in facts.cohort
                             if task[_RESPONSE_US] is not None]).median_seconds
    return FirstResponseFigure(bars, median, "Tasks created in the period by the time from "
                               "creation to the first reply a person sent the customer "
                               "(the acknowledgement does not count); median of those answered.")


def _sla_key(facts: _Facts, task: _Fact) -> str:
    return _period_key(facts.clock.day(task[_CREATED]), facts.weekly)


def _period_key(day: date, weekly: bool) -> str:
    if not weekly:
        return day.isoformat()
    year, week, _weekday = day.isocalendar()
    return f"{year}-W{week:02d}"


def _sla(facts: _Facts) -> SlaFigure:
    # counted per local day first: a key per task cost more than all the rest of the figure
    counts = Counter((facts.clock.day_number(task[_CREATED]), task[_SLA]) for task in facts.cohort)
    outcomes: dict[str, Counter] = defaultdict(Counter)
    for (day, outcome), count in counts.items():
        key = _period_key(_EPOCH_DAY + timedelta(days=day), facts.weekly)
        outcomes[key][SlaOutcome(outcome)] += count
    points = []
    for key in sorted(outcomes):
        share = sla_share(outcomes[key].elements())
        points.append(SlaPoint(key, share.within, share.breached, share.pending, share.share))
    overall = sla_share(sum(outcomes.values(), Counter()).elements())
    return SlaFigure("week" if facts.weekly else "day", points, overall.share,
                     "Tasks created each day (each ISO week past 31 days): within SLA = "
                     "first reply and resolution each by its due time; share = within / "
                     "(within + breached), the ones not yet due left out.")


def _days(facts: _Facts) -> list[tuple[date, int]]:
    """Each day of the period in the business timezone, with the UTC second it ends."""
    zone = facts.clock.zone
    day, last = (facts.period.since.astimezone(zone).date(),
                 facts.period.until.astimezone(zone).date())
    days = []
    while day <= last:
        ends = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)
        days.append((day, int(ends.timestamp())))
        day += timedelta(days=1)
    return days


def _backlog(facts: _Facts) -> BacklogFigure:
    # A span ends after it starts: open at a cut = spans begun before it − spans ended before
    # it (two binary searches per day, whatever the number of tasks). Cuts fall on whole
    # seconds, so the floored seconds compare as the instants do.
    starts = sorted(start for _task, start, _end in facts.open_spans)
    ends = sorted(end for _task, _start, end in facts.open_spans if end is not None)
    points = [Bar(day.isoformat(), day.isoformat(),
                  bisect_left(starts, cut) - bisect_left(ends, cut))
              for day, cut in _days(facts)]
    return BacklogFigure(points, "Tasks open (new to waiting for the customer) at the end of "
                         "each day, replayed from their creation, resolution and reopenings.")


def _volume(facts: _Facts) -> VolumeFigure:
    counts = Counter(facts.clock.hour(task[_CREATED]) for task in facts.cohort)
    return VolumeFigure([Bar(str(hour), f"{hour:02d}:00", counts[hour]) for hour in range(24)],
                        "Tasks created in the period by hour of the day (business timezone).")


def _hours_saved(facts: _Facts, minutes_per_task: float) -> HoursSaved:
    automated = sum(1 for task in facts.cohort if task[_AUTOMATED])
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
    ids = sorted(task[_ID] for task in pick(_load_facts(session, period, filters, tz, now), key))
    if not ids:
        return []
    rows = session.execute(select(*_LIST_COLUMNS).where(Task.id.in_(ids)).order_by(Task.id))
    return [KpiTask(*row) for row in rows]


def _pick_response(facts: _Facts, key: str) -> list[_Fact]:
    return [task for task in facts.cohort if _response_bucket(task) == key]


def _pick_sla(facts: _Facts, key: str) -> list[_Fact]:
    period_key, _, outcome = key.partition(":")
    return [task for task in facts.cohort if _sla_key(facts, task) == period_key
            and (not outcome or task[_SLA] == outcome)]


def _pick_backlog(facts: _Facts, key: str) -> list[_Fact]:
    cut = dict((day.isoformat(), cut) for day, cut in _days(facts)).get(key)
    if cut is None:
        return []
    open_then = {task_id for task_id, start, end in facts.open_spans
                 if start < cut and (end is None or end >= cut)}
    return [task for task in facts.tasks if task[_ID] in open_then]


def _pick_volume(facts: _Facts, key: str) -> list[_Fact]:
    return [task for task in facts.cohort if str(facts.clock.hour(task[_CREATED])) == key]


def _pick_csat(facts: _Facts, key: str) -> list[_Fact]:
    return [task for task in facts.tasks if str(facts.ratings.get(task[_ID])) == key]


def _pick_automated(facts: _Facts, _key: str) -> list[_Fact]:
    return [task for task in facts.cohort if task[_AUTOMATED]]


_PICKERS = {"first_response": _pick_response, "sla": _pick_sla, "backlog": _pick_backlog,
            "volume": _pick_volume, "csat": _pick_csat, "automated": _pick_automated}


def kpi_csv_rows(session: Session, *, period: Period, filters: KpiFilters, tz: str,
                 now: datetime) -> Iterator[dict[str, Any]]:
    """One row per task created in the period, oldest first, with no customer data: its
    figures as the KPIs count them (times in seconds, UTC instants in ISO 8601)."""
    since, until = _inline(period.since), _inline(period.until)
    query = (select(*_LIST_COLUMNS, _sla_outcome(_inline(min(period.until, now))),
                    _automated(until))
             .where(Task.created_at.between(since, until), *task_conditions(filters))
             .order_by(Task.created_at, Task.id))
    for *columns, outcome, automated in session.execute(query):
        task = KpiTask(*columns)
        yield {"ref": f"T-{task.id}", "created_at": task.created_at.isoformat(),
               "category": task.category, "priority": task.priority, "team": task.team,
               "assignee": task.assignee_id, "status": task.status,
               "first_response_seconds": _seconds(task.created_at, task.first_response_at),
               "resolution_seconds": _seconds(task.created_at, task.resolved_at),
               "sla_outcome": outcome, "rating": task.rating, "automated": automated}


def _seconds(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else (end - start).total_seconds()

"""KPIs over a window of the audit trail: one small query, then a pure computation.

`compute_report` reads only plain rows (`TaskRow`, `EventRow`) and the window, so every figure
can be checked by hand; `load_report_rows` is the only part that touches the database.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from store.events import Audit
from store.figures import NO_TEAM, RATING_SCALE, UNASSIGNED, KpiFilters, Period
from store.lifecycle import Action
from store.models import OPEN_STATUSES, Task, TaskEvent
from store.satisfaction import GOOD_RATING, NO_SURVEYS, SurveyFigures, survey_figures


@dataclass(frozen=True)
class TaskRow:
    """The fields of a task the report needs (its current state)."""

    id: int
    category: str
    channel: str
    team: str | None
    assignee_id: str | None
    status: str
    created_at: datetime
    first_response_at: datetime | None = None
    first_response_due: datetime | None = None
    resolved_at: datetime | None = None
    resolution_due: datetime | None = None
    rating: int | None = None


@dataclass(frozen=True)
class EventRow:
    """One audit event; `id` breaks ties between events written at the same instant."""

    id: int
    task_id: int | None
    at: datetime
    actor: str
    action: str
    to_status: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


class SlaOutcome(StrEnum):
    WITHIN = "within"
    BREACHED = "breached"
    PENDING = "pending"  # not answered/resolved yet, but not due yet either
    NO_SLA = "no_sla"  # the task has no due times


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime


@dataclass(frozen=True)
class Created:
    total: int
    by_category: dict[str, int]
    by_channel: dict[str, int]


@dataclass(frozen=True)
class DurationStats:
    count: int
    mean_seconds: float | None
    median_seconds: float | None


@dataclass(frozen=True)
class SlaShare:
    within: int
    breached: int
    pending: int
    no_sla: int
    share: float | None  # within / (within + breached); None when nothing is decided yet


@dataclass(frozen=True)
class SlaReport:
    overall: SlaShare
    by_category: dict[str, SlaShare]
    by_team: dict[str, SlaShare]
    by_agent: dict[str, SlaShare]


@dataclass(frozen=True)
class Alerts:
    reminders: int
    reminders_by_kind: dict[str, int]
    escalations: int
    escalations_by_step: dict[str, int]
    offers_expired: int
    # tasks born late (their message came after a deadline): breached from the start, with no
    # reminders or escalations for the deadlines they missed
    arrived_late: int = 0
    # errors Meta reported about the account or a number (webhook-level `errors`), by code
    whatsapp_errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BacklogDay:
    date: date
    open: int


@dataclass(frozen=True)
class Backlog:
    now: int
    by_day: list[BacklogDay]


@dataclass(frozen=True)
class AgentWork:
    assigned: int
    accepted: int
    closed: int


@dataclass(frozen=True)
class Automation:
    automated: int
    created: int
    share: float | None
    minutes_per_task: float
    hours_saved: float


@dataclass(frozen=True)
class Satisfaction:
    """The ratings (1–5) given in the window, with or without a survey."""

    count: int
    mean: float | None
    distribution: dict[int, int]
    csat: float | None  # ratings of store.satisfaction.GOOD_RATING or more / ratings (0–1)


@dataclass(frozen=True)
class Report:
    window: Window
    created: Created
    first_response: DurationStats  # created → the first reply WhatsApp accepted
    accept: DurationStats  # created → the first acceptance by an agent
    resolution: DurationStats
    sla: SlaReport
    alerts: Alerts
    backlog: Backlog
    agents: dict[str, AgentWork]
    automation: Automation
    satisfaction: Satisfaction
    surveys: SurveyFigures  # response rate and CSAT of the surveys (store.satisfaction)


_RELATIVE = re.compile(r"^\s*(\d{1,5})\s*([dh])\s*$", re.IGNORECASE)  # 5 digits: 273 years
SINCE_HELP = "write it as 7d, 24h, 30d or an ISO date such as 2026-11-01"


def report_start(text: str, *, now: datetime) -> datetime:
    """The start of a report's window: `now` minus `7d`/`24h`, or an ISO date/time (UTC
    unless it says otherwise). Raises ValueError with what to write instead."""
    match = _RELATIVE.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2).lower()
        if amount == 0:
            raise ValueError(f"{text!r} is an empty window; {SINCE_HELP}")
        return now - (timedelta(days=amount) if unit == "d" else timedelta(hours=amount))
    try:
        since = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a period or a date; {SINCE_HELP}") from None
    since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
    if since >= now:
        raise ValueError(f"{text!r} is not in the past; {SINCE_HELP}")
    return since


def compute_report(
    tasks: Iterable[TaskRow],
    events: Iterable[EventRow],
    *,
    since: datetime,
    until: datetime,
    minutes_per_task: float,
    surveys: SurveyFigures = NO_SURVEYS,
) -> Report:
    """The KPIs of the window [since, until] (pure: no clock, no database).

    `tasks` must hold every task created in the window or open at `until`, `events` every
    event up to `until` of those tasks and of any task with an event in the window;
    `surveys` are the window's survey figures, passed through (store.satisfaction).
    """
    ordered = sorted((e for e in events if e.at <= until), key=lambda e: (e.at, e.id))
    by_task: dict[int, list[EventRow]] = defaultdict(list)
    for event in ordered:
        if event.task_id is not None:
            by_task[event.task_id].append(event)
    tasks = list(tasks)
    cohort = [t for t in tasks if since <= t.created_at <= until]
    automated = sum(1 for t in cohort if is_automated(by_task.get(t.id, [])))
    return Report(
        window=Window(since, until),
        created=_created(cohort),
        first_response=duration_stats(
            [t.first_response_at - t.created_at for t in cohort if t.first_response_at]
        ),
        accept=duration_stats(_times_to_accept(cohort, by_task)),
        resolution=duration_stats([t.resolved_at - t.created_at for t in cohort if t.resolved_at]),
        sla=_sla_report(cohort, until),
        alerts=_alerts([e for e in ordered if e.at >= since]),
        backlog=_backlog(tasks, ordered, since=since, until=until),
        agents=_agent_work(by_task, since),
        automation=_automation(automated, len(cohort), minutes_per_task),
        satisfaction=_satisfaction(cohort, ordered, since),
        surveys=surveys,
    )


def duration_stats(durations: Sequence[timedelta]) -> DurationStats:
    """Count, mean and median (the mean of the middle two for an even count) in seconds."""
    seconds = [d.total_seconds() for d in durations]
    if not seconds:
        return DurationStats(0, None, None)
    return DurationStats(len(seconds), statistics.fmean(seconds), statistics.median(seconds))


def sla_outcome(task: TaskRow, now: datetime) -> SlaOutcome:
    """Within: first response (the first reply a person sent the customer, not the
    acceptance) by its due time AND resolved by its due time. A missing response or
    resolution is a breach only once its due time has passed (else pending)."""
    parts = [
        _deadline_outcome(task.first_response_at, task.first_response_due, now),
        _deadline_outcome(task.resolved_at, task.resolution_due, now),
    ]
    decided = [part for part in parts if part is not None]
    if not decided:
        return SlaOutcome.NO_SLA
    for outcome in (SlaOutcome.BREACHED, SlaOutcome.PENDING):
        if outcome in decided:
            return outcome
    return SlaOutcome.WITHIN


def _deadline_outcome(done_at, due, now) -> SlaOutcome | None:
    if due is None:
        return None
    if done_at is not None:
        return SlaOutcome.WITHIN if done_at <= due else SlaOutcome.BREACHED
    return SlaOutcome.BREACHED if now > due else SlaOutcome.PENDING


def sla_share(outcomes: Iterable[SlaOutcome]) -> SlaShare:
    """Counts per outcome and the share within SLA among the decided ones."""
    counts = Counter(outcomes)
    within, breached = counts[SlaOutcome.WITHIN], counts[SlaOutcome.BREACHED]
    share = within / (within + breached) if within + breached else None
    return SlaShare(within, breached, counts[SlaOutcome.PENDING], counts[SlaOutcome.NO_SLA], share)


def is_automated(events: Sequence[EventRow]) -> bool:
    """True when a task (its events, oldest first) was created and routed with no human step:
    a `routed` event with details.automatic true and no task creation, assign or reassign by a
    person (actor `agent:…`) before its first acceptance."""
    routed = False
    for event in events:
        if event.action == Action.ACCEPT:
            break
        manual = (Audit.CREATED, Action.ASSIGN, Action.REASSIGN)
        if event.action in manual and event.actor.startswith("agent:"):
            return False
        if event.action == Audit.ROUTED and event.details.get("automatic") is True:
            routed = True
    return routed


def _times_to_accept(cohort: Sequence[TaskRow],
                     by_task: Mapping[int, Sequence[EventRow]]) -> list[timedelta]:
    """Created → first `accept` event of each task accepted (a later re-accept, after a
    decline, a reassignment or a reopening, does not count again)."""
    times = []
    for task in cohort:
        accepted = next((e.at for e in by_task.get(task.id, ()) if e.action == Action.ACCEPT),
                        None)
        if accepted is not None:
            times.append(accepted - task.created_at)
    return times


def _by_count(counter: Counter) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def _created(cohort: Sequence[TaskRow]) -> Created:
    return Created(
        total=len(cohort),
        by_category=_by_count(Counter(t.category for t in cohort)),
        by_channel=_by_count(Counter(t.channel for t in cohort)),
    )


def _sla_report(cohort: Sequence[TaskRow], now: datetime) -> SlaReport:
    outcomes = [(task, sla_outcome(task, now)) for task in cohort]

    def grouped(key) -> dict[str, SlaShare]:
        groups: dict[str, list[SlaOutcome]] = defaultdict(list)
        for task, outcome in outcomes:
            groups[key(task)].append(outcome)
        return {name: sla_share(groups[name]) for name in sorted(groups)}

    return SlaReport(
        overall=sla_share(outcome for _, outcome in outcomes),
        by_category=grouped(lambda t: t.category),
        by_team=grouped(lambda t: t.team or NO_TEAM),
        by_agent=grouped(lambda t: t.assignee_id or UNASSIGNED),
    )


def _alerts(in_window: Sequence[EventRow]) -> Alerts:
    def detail_counts(action: str, key: str) -> Counter:
        return Counter(str(e.details.get(key, "?")) for e in in_window if e.action == action)

    reminders = detail_counts(Audit.REMINDER, "kind")
    escalations = detail_counts(Audit.ESCALATED, "step")
    return Alerts(
        reminders=sum(reminders.values()),
        reminders_by_kind=_by_count(reminders),
        escalations=sum(escalations.values()),
        escalations_by_step=_by_count(escalations),
        offers_expired=sum(1 for e in in_window if e.action == Audit.OFFER_EXPIRED),
        arrived_late=sum(1 for e in in_window if e.action == Audit.ARRIVED_LATE),
        whatsapp_errors=_by_count(detail_counts(Audit.WHATSAPP_ERROR, "code")),
    )


def _backlog(
    tasks: Sequence[TaskRow], ordered: Sequence[EventRow], *, since: datetime, until: datetime
) -> Backlog:
    """Open tasks now (from the tasks) and at the end of each UTC day of the window (today:
    so far), replayed from the status each event (created or a transition) left its task in."""
    changes = [e for e in ordered if e.to_status and e.task_id is not None]
    status: dict[int, str] = {}
    days, index, open_count = [], 0, 0
    day = since.astimezone(UTC).date()
    while day <= until.astimezone(UTC).date():
        cut = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
        while index < len(changes) and changes[index].at < cut:
            change = changes[index]
            was_open = status.get(change.task_id) in OPEN_STATUSES
            status[change.task_id] = change.to_status
            open_count += (change.to_status in OPEN_STATUSES) - was_open
            index += 1
        days.append(BacklogDay(day, open_count))
        day += timedelta(days=1)
    return Backlog(now=sum(1 for t in tasks if t.status in OPEN_STATUSES), by_day=days)


def _agent_work(by_task: Mapping[int, Sequence[EventRow]], since: datetime) -> dict[str, AgentWork]:
    kinds = {Action.ASSIGN: 0, Action.REASSIGN: 0, Action.ACCEPT: 1, Action.CLOSE: 2}
    work: dict[str, tuple[set, set, set]] = defaultdict(lambda: (set(), set(), set()))
    for task_id, events in by_task.items():
        assignee = None  # replayed: transitions record `assignee` whenever it changes
        for event in events:
            assignee = event.details.get("assignee", assignee)
            if event.at >= since and assignee and event.action in kinds:
                work[assignee][kinds[event.action]].add(task_id)
    return {agent: AgentWork(*(len(s) for s in work[agent])) for agent in sorted(work)}


def _automation(automated: int, created: int, minutes_per_task: float) -> Automation:
    return Automation(
        automated=automated,
        created=created,
        share=automated / created if created else None,
        minutes_per_task=minutes_per_task,
        hours_saved=automated * minutes_per_task / 60,
    )


def _satisfaction(
    cohort: Sequence[TaskRow], ordered: Sequence[EventRow], since: datetime
) -> Satisfaction:
    """A task's latest `rated` event in the window counts; a task of the window with a rating
    but no `rated` event at all counts with `Task.rating`."""
    ratings: dict[int, Any] = {}
    rated_tasks = set()
    for event in ordered:
        if event.action == Audit.RATED and event.task_id is not None:
            rated_tasks.add(event.task_id)
            if event.at >= since:
                ratings[event.task_id] = event.details.get("rating")
    for task in cohort:
        if task.rating is not None and task.id not in rated_tasks:
            ratings[task.id] = task.rating
    valid = [r for r in ratings.values() if type(r) is int and r in RATING_SCALE]
    mean = statistics.fmean(valid) if valid else None
    good = sum(1 for rating in valid if rating >= GOOD_RATING)
    return Satisfaction(len(valid), mean, {score: valid.count(score) for score in RATING_SCALE},
                        good / len(valid) if valid else None)


_TASK_COLUMNS = (
    Task.id, Task.category, Task.channel, Task.team, Task.assignee_id, Task.status,
    Task.created_at, Task.first_response_at, Task.first_response_due, Task.resolved_at,
    Task.resolution_due, Task.rating,
)  # fmt: skip
_EVENT_COLUMNS = (
    TaskEvent.id, TaskEvent.task_id, TaskEvent.at, TaskEvent.actor, TaskEvent.action,
    TaskEvent.to_status, TaskEvent.details,
)  # fmt: skip


def load_report_rows(
    session: Session, *, since: datetime, until: datetime
) -> tuple[list[TaskRow], list[EventRow]]:
    """The rows `compute_report` needs: tasks created in the window, open now or touched in
    the window, and all their events up to `until` (earlier ones too, to replay state), with
    the window's WhatsApp errors (events of no task)."""
    touched = select(TaskEvent.task_id).where(TaskEvent.at >= since, TaskEvent.task_id.is_not(None))
    relevant = or_(
        Task.status.in_(list(OPEN_STATUSES)), Task.created_at >= since, Task.id.in_(touched)
    )
    tasks = [
        TaskRow(**row._mapping) for row in session.execute(select(*_TASK_COLUMNS).where(relevant))
    ]
    query = (
        select(*_EVENT_COLUMNS)
        .where(or_(TaskEvent.task_id.in_(select(Task.id).where(relevant)),
                   and_(TaskEvent.task_id.is_(None), TaskEvent.action == Audit.WHATSAPP_ERROR,
                        TaskEvent.at >= since)),
               TaskEvent.at <= until)
        .order_by(TaskEvent.at, TaskEvent.id)
    )
    events = [EventRow(**row._mapping) for row in session.execute(query)]
    return tasks, events


def build_report(
    session: Session, *, since: datetime, until: datetime, minutes_per_task: float
) -> Report:
    """Loads the rows of the window and computes its KPIs, the surveys' of the whole
    business (no filter) included."""
    tasks, events = load_report_rows(session, since=since, until=until)
    surveys = survey_figures(session, period=Period(since, until), filters=KpiFilters())
    return compute_report(
        tasks, events, since=since, until=until, minutes_per_task=minutes_per_task,
        surveys=surveys,
    )


def report_as_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data: times and dates as ISO 8601, durations in seconds."""
    return asdict(report, dict_factory=_plain_dict)


def _plain_dict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {key: _plain(value) for key, value in pairs}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value

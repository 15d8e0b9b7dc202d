"""The web console's board: the open tasks an agent may see, with their SLA state, filtered
and sorted by due time; and the board's version, which changes whenever any task changes.

Built for speed: one query of plain columns for the open tasks the actor may see, the SLA
state computed here, and only the rows shown have their title and customer name opened.
Also the task page: everything the console shows of one task.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from store.crypto import ERASED, load_keys
from store.events import Audit, list_events
from store.lifecycle import Access, Actor, check_access, visible_to
from store.models import (
    OPEN_STATUSES,
    Contact,
    Direction,
    Message,
    Survey,
    Task,
    TaskEvent,
    TaskStatus,
)
from store.reports import UNASSIGNED
from store.tasks import get_task

# The SLA reminder fires at 80 % of the time to a deadline: from then on the board says
# "at risk", so that what the console shows agrees with what the agent was told.
AT_RISK_SHARE = 0.8


class SlaState(StrEnum):
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    BREACHED = "breached"
    WAITING_TEAM = "waiting_team"  # new and unassigned: waiting for an agent of its team
    PAUSED = "paused"  # waiting for the customer: the SLA clock is stopped
    NO_SLA = "no_sla"


def active_deadline(task: Any) -> datetime | None:
    """The deadline that runs now for an open task (a Task or a row with its columns): the
    first response's while there is none, then the resolution's; None without one."""
    if task.first_response_at is None and task.first_response_due is not None:
        return task.first_response_due
    return task.resolution_due


def sla_state(task: Any, now: datetime) -> SlaState:
    """The SLA state of an open task at `now`. A pause wins (its due times move when it
    ends), then a breach, then waiting for the team; the share of time gone decides the rest
    (from the SLA start, the latest reopening or the creation, to the active deadline)."""
    if task.status == TaskStatus.WAITING_CUSTOMER:
        return SlaState.PAUSED
    due = active_deadline(task)
    if due is not None and due < now:
        return SlaState.BREACHED
    if task.status == TaskStatus.NEW and task.assignee_id is None:
        return SlaState.WAITING_TEAM
    if due is None:
        return SlaState.NO_SLA
    start = task.sla_started_at or task.created_at
    span = (due - start).total_seconds()
    if span <= 0 or (now - start).total_seconds() >= AT_RISK_SHARE * span:
        return SlaState.AT_RISK
    return SlaState.ON_TRACK


@dataclass(frozen=True)
class BoardFilters:
    """What the board shows; None shows all. `agent` is an assignee id, or UNASSIGNED."""

    team: str | None = None
    status: str | None = None
    priority: str | None = None
    category: str | None = None
    agent: str | None = None
    sla: str | None = None

    @classmethod
    def from_query(cls, mapping: Mapping[str, Any]) -> "BoardFilters":
        """The filters named in `mapping` (a query string), empty values ignored."""
        names = {field.name for field in fields(cls)}
        return cls(**{name: str(value).strip() for name, value in mapping.items()
                      if name in names and value is not None and str(value).strip()})


@dataclass(frozen=True)
class BoardRow:
    id: int
    ref: str
    title: str  # "" when unreadable (the customer was erased)
    category: str
    priority: str
    status: str
    team: str | None
    assignee_id: str | None
    sla_state: SlaState
    due_at: datetime | None  # the active deadline
    created_at: datetime
    updated_at: datetime
    customer_name: str | None


@dataclass(frozen=True)
class Board:
    rows: list[BoardRow]
    total: int  # rows matching the filters, before the limit
    options: dict[str, list[str]]  # team, category, priority, agent: the dropdowns' values
    version: int  # the board_version it was read at


# What the SLA state and the order need, read for every open task; the rest of a row is read
# for the rows shown only.
_STATE_COLUMNS = (Task.id, Task.status, Task.assignee_id, Task.created_at,
                  Task.first_response_due, Task.first_response_at, Task.resolution_due,
                  Task.sla_started_at)
_SHOWN_COLUMNS = (Task.id, Task.title, Task.category, Task.priority, Task.team, Task.updated_at,
                  Contact.name)
_SIMPLE = {"team": Task.team, "status": Task.status, "priority": Task.priority,
           "category": Task.category}


def list_board(session: Session, *, actor: Actor, filters: BoardFilters, now: datetime,
               limit: int = 200) -> Board:
    """The open tasks `actor` may see (store.lifecycle.visible_to) that pass `filters`,
    sorted by active deadline (none last) then number, cut to `limit`."""
    version = board_version(session)
    rows = session.execute(_open_tasks(actor).with_only_columns(*_STATE_COLUMNS)
                           .where(*_sql_filters(filters))).all()
    states = {row.id: sla_state(row, now) for row in rows}
    if filters.sla:
        rows = [row for row in rows if states[row.id] == filters.sla]
    rows.sort(key=_due_order)
    shown = rows[:limit]
    details = _shown(session, [row.id for row in shown])
    board_rows = [_board_row(row, states[row.id], details[row.id]) for row in shown]
    return Board(rows=board_rows, total=len(rows), options=_options(session, actor),
                 version=version)


def board_version(session: Session) -> int:
    """The id of the latest audit event (0 for none): every change of a task writes one, so
    a board read at this version is current while it stays the same."""
    return session.scalar(select(func.max(TaskEvent.id))) or 0


def _open_tasks(actor: Actor):
    query = select(Task.id).where(Task.status.in_(sorted(OPEN_STATUSES)))
    visible = visible_to(actor)
    return query if visible is None else query.where(visible)


def _sql_filters(filters: BoardFilters) -> list:
    conditions = [column == getattr(filters, name) for name, column in _SIMPLE.items()
                  if getattr(filters, name)]
    if filters.agent == UNASSIGNED:
        conditions.append(Task.assignee_id.is_(None))
    elif filters.agent:
        conditions.append(Task.assignee_id == filters.agent)
    return conditions


def _due_order(row: Row) -> tuple:
    due = active_deadline(row)
    return (due is None, due.timestamp() if due else 0.0, row.id)


def _shown(session: Session, ids: Sequence[int]) -> dict[int, Row]:
    """The shown rows' other columns, titles and customer names opened with one look-up of
    their customers' keys."""
    if not ids:
        return {}
    keyed = select(Contact.data_key_id).join(Task, Task.contact_id == Contact.id)
    load_keys(session.scalars(keyed.where(Task.id.in_(ids))))
    query = (select(*_SHOWN_COLUMNS).outerjoin(Contact, Task.contact_id == Contact.id)
             .where(Task.id.in_(ids)))
    return {row.id: row for row in session.execute(query)}


def _readable(text: str | None) -> str | None:
    return None if text is None or text == ERASED else str(text)


def _board_row(row: Row, state: SlaState, shown: Row) -> BoardRow:
    return BoardRow(id=row.id, ref=f"T-{row.id}", title=_readable(shown.title) or "",
                    category=shown.category, priority=shown.priority, status=row.status,
                    team=shown.team, assignee_id=row.assignee_id, sla_state=state,
                    due_at=active_deadline(row), created_at=row.created_at,
                    updated_at=shown.updated_at, customer_name=_readable(shown.name))


def _options(session: Session, actor: Actor) -> dict[str, list[str]]:
    """The distinct teams, categories, priorities and agents of the open tasks `actor` may
    see (one grouped query: a handful of combinations, whatever the number of tasks)."""
    columns = (Task.team, Task.category, Task.priority, Task.assignee_id)
    combos = session.execute(_open_tasks(actor).with_only_columns(*columns)
                             .group_by(*columns)).all()
    agents = {row.assignee_id or UNASSIGNED for row in combos}
    return {"team": sorted({row.team for row in combos if row.team}),
            "category": sorted({row.category for row in combos}),
            "priority": sorted({row.priority for row in combos}),
            "agent": sorted(agents)}


# --- the task page ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Deadlines:
    first_response_due: datetime | None
    resolution_due: datetime | None
    sla_started_at: datetime | None  # the latest reopening; None: the creation
    waiting_since: datetime | None  # the pause (waiting for the customer) began then


@dataclass(frozen=True)
class Customer:
    name: str | None
    wa_id: str | None
    language: str | None
    crm_status: str | None
    tags: list[str]
    erased_at: datetime | None = None  # their data was erased (a GDPR request) then


@dataclass(frozen=True)
class ConversationEntry:
    at: datetime
    direction: str  # "in" (the customer), "out" (to the customer), "internal" (a note)
    who: str
    type: str
    text: str | None
    media_id: str | None
    via: str | None


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    details: dict[str, Any]  # sealed texts opened (crypto.ERASED once the customer is erased)


@dataclass(frozen=True)
class Routing:
    """The latest routing decision (`routed`, or `unrouted` when nobody was available)."""

    at: datetime
    action: str
    agent: str | None
    summary: str | None
    candidates: list[dict[str, Any]]  # agent, chosen, reason


@dataclass(frozen=True)
class SurveyView:
    """The task's satisfaction survey as the console shows it."""

    status: str
    due_at: datetime
    via: str | None
    sent_at: datetime | None
    score: int | None
    good: bool | None
    answered_at: datetime | None
    answered_by: str | None
    comment: str | None
    note: str | None


@dataclass(frozen=True)
class TaskPage:
    id: int
    ref: str
    title: str
    status: str
    category: str
    priority: str
    team: str | None
    assignee_id: str | None
    tags: list[str]
    channel: str
    language: str | None
    rating: int | None
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    sla_state: SlaState | None  # None for a resolved or closed task
    deadlines: Deadlines
    customer: Customer | None
    conversation: list[ConversationEntry]
    audit: list[AuditEntry]
    routing: Routing | None
    survey: SurveyView | None


_ROUTING_ACTIONS = (Audit.ROUTED, Audit.UNROUTED)


def load_task_page(session: Session, *, actor: Actor, ref: str | int, now: datetime) -> TaskPage:
    """Everything the console shows of task `ref`. Raises NotFound for an unknown ref and
    NotAllowed when `actor` may not see it (the same check as the chat's `show`)."""
    task = get_task(session, ref=ref)
    check_access(task, Access.SEE, actor)
    events = list_events(session, task_id=task.id)
    messages = session.scalars(select(Message).where(Message.task_id == task.id)).all()
    return TaskPage(
        id=task.id, ref=task.ref, title=_readable(task.title) or "", status=task.status,
        category=task.category, priority=task.priority, team=task.team,
        assignee_id=task.assignee_id, tags=list(task.tags or ()), channel=task.channel,
        language=task.language, rating=task.rating, created_at=task.created_at,
        updated_at=task.updated_at, first_response_at=task.first_response_at,
        resolved_at=task.resolved_at, closed_at=task.closed_at,
        sla_state=sla_state(task, now) if task.is_open else None,
        deadlines=Deadlines(task.first_response_due, task.resolution_due, task.sla_started_at,
                            task.waiting_since),
        customer=_customer(task.contact), conversation=_conversation(task, messages, events),
        audit=[_audit_entry(event) for event in events], routing=_routing(events),
        survey=_survey(session, task.id))


def _survey(session: Session, task_id: int) -> SurveyView | None:
    survey = session.scalar(select(Survey).where(Survey.task_id == task_id))
    if survey is None:
        return None
    return SurveyView(status=survey.status, due_at=survey.due_at, via=survey.via,
                      sent_at=survey.sent_at, score=survey.score, good=survey.good,
                      answered_at=survey.answered_at, answered_by=survey.answered_by,
                      comment=_readable(survey.comment), note=survey.note)


def _customer(contact: Contact | None) -> Customer | None:
    if contact is None:
        return None
    return Customer(name=_readable(contact.name), wa_id=_readable(contact.wa_id),
                    language=contact.language, crm_status=contact.crm_status,
                    tags=list(contact.tags or ()), erased_at=contact.erased_at)


def _conversation(task: Task, messages: Sequence[Message],
                  events: Sequence[TaskEvent]) -> list[ConversationEntry]:
    """The task's messages both ways and its internal notes, oldest first (a message at its
    sending time, as `show` prints it; a tie keeps messages before notes)."""
    customer = (_readable(task.contact.name) if task.contact else None) or "customer"
    # who wrote each reply: the audit's `reply` events name the person, the message does not
    repliers = {str(event.details.get("text")): event.actor for event in events
                if event.action == Audit.REPLY and event.details}
    entries = [(message.sent_at or message.created_at, 0, message.id,
                _message_entry(message, customer, repliers)) for message in messages]
    entries += [(event.at, 1, event.id, _note_entry(event))
                for event in events if event.action == Audit.NOTE]
    return [entry for *_order, entry in sorted(entries, key=lambda item: item[:3])]


def _message_entry(message: Message, customer: str,
                   repliers: dict[str, str]) -> ConversationEntry:
    """A message; an outgoing one is a person's reply (named) or opsbot's own (the
    acknowledgement, the closing message)."""
    inbound = message.direction == Direction.INBOUND
    text = _readable(message.text)
    who = customer if inbound else repliers.get(text or "", "opsbot")
    return ConversationEntry(at=message.sent_at or message.created_at,
                             direction="in" if inbound else "out", who=who, type=message.type,
                             text=text, media_id=message.media_id, via=message.via)


def _note_entry(event: TaskEvent) -> ConversationEntry:
    text = (event.details or {}).get("text")
    return ConversationEntry(at=event.at, direction="internal", who=event.actor, type="note",
                             text=str(text) if text is not None else None, media_id=None,
                             via=None)


def _audit_entry(event: TaskEvent) -> AuditEntry:
    details = {key: str(value) if isinstance(value, str) else value
               for key, value in (event.details or {}).items()}
    return AuditEntry(at=event.at, actor=event.actor, action=event.action,
                      from_status=event.from_status, to_status=event.to_status, details=details)


def _routing(events: Sequence[TaskEvent]) -> Routing | None:
    """The latest `routed` or `unrouted` event's explanation, as `show` prints it."""
    routed = [event for event in events if event.action in _ROUTING_ACTIONS]
    if not routed:
        return None
    event = routed[-1]
    details = event.details or {}
    return Routing(at=event.at, action=event.action, agent=details.get("agent"),
                   summary=details.get("summary"),
                   candidates=list(details.get("candidates") or ()))

"""Tasks: creation, look-up and every change of state, each with its audit event."""

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, lazyload
from sqlalchemy.orm.attributes import set_committed_value

from store.agents import note_load
from store.contacts import data_key_of
from store.crypto import load_keys, personal
from store.errors import NotFound
from store.events import Audit, record_event, start_chain
from store.lifecycle import Action, Actor, check_transition, visible_to
from store.models import OPEN_STATUSES, Contact, Message, OutboxMessage, Task, TaskEvent, TaskStatus
from store.outbox import CUSTOMER_CHANNEL
from store.rows import insert_row
from store.types import utcnow

REPLY_KIND = "reply"  # the outbox kind of a customer message a person wrote (`reply` verb)
_REF = re.compile(r"^\s*(?:T-?|#)?(\d{1,12})\s*$", re.IGNORECASE)


def parse_ref(ref: str | int) -> int:
    """The task number in `T-12`, `t12`, `#12` or `12`. Raises NotFound for anything else."""
    match = _REF.match(str(ref))
    if not match:
        raise NotFound(f"'{ref}' is not a task reference; write it as T-12 or 12")
    return int(match.group(1))


def get_task(session: Session, *, ref: str | int, for_update: bool = False) -> Task:
    """The task with this ref. Raises NotFound with a sentence naming the ref."""
    number = parse_ref(ref)
    task = session.scalars(_task_query(for_update), {"task_id": number}).first()
    if task is None:
        raise NotFound(f"There is no task T-{number}")
    return task


@cache
def _task_query(for_update: bool) -> Select:
    """Built once: every agent command looks its task up."""
    query = select(Task).where(Task.id == bindparam("task_id"))
    return query.with_for_update(of=Task) if for_update else query


def list_tasks(
    session: Session,
    *,
    statuses: Sequence[str] | None = None,
    assignee_id: str | None = None,
    team: str | None = None,
    limit: int = 200,
) -> list[Task]:
    """Tasks filtered by status, assignee and team, newest first."""
    query = select(Task).order_by(Task.id.desc()).limit(limit)
    if statuses:
        query = query.where(Task.status.in_(list(statuses)))
    if assignee_id is not None:
        query = query.where(Task.assignee_id == assignee_id)
    if team is not None:
        query = query.where(Task.team == team)
    return list(session.scalars(query))


def page_tasks(session: Session, *, after: int, limit: int, statuses: Collection[str] | None,
               fields: dict[str, str | None], updated_after: datetime | None,
               visible: Any = None) -> list[Task]:
    """Up to `limit` tasks after id `after`, in id order (a page: a task inserted meanwhile
    comes later, never in between), of `statuses`, with the given column values (`fields`:
    team, assignee_id, category, priority; None: any), changed after `updated_after`, and
    passing `visible` (store.lifecycle.visible_to) when given."""
    query = (select(Task.id, Contact.data_key_id).outerjoin(Contact, Task.contact_id == Contact.id)
             .where(Task.id > after).order_by(Task.id).limit(limit))
    if statuses is not None:
        query = query.where(Task.status.in_(list(statuses)))
    for column, value in fields.items():
        if value is not None:
            query = query.where(getattr(Task, column) == value)
    if updated_after is not None:
        query = query.where(Task.updated_at > updated_after)
    if visible is not None:
        query = query.where(visible)
    found = session.execute(query).all()
    load_keys(row.data_key_id for row in found)  # one look-up for the page's customers
    tasks = select(Task).where(Task.id.in_([row.id for row in found])).order_by(Task.id)
    return list(session.scalars(tasks))


@dataclass(frozen=True)
class CustomerTasks:
    """What applying a customer's message needs of their tasks: how many they have, the
    latest one and the latest open one (as a rule the same task)."""

    count: int = 0
    last: Task | None = None
    open: Task | None = None


def find_customer_tasks(session: Session, *, contact_id: int) -> CustomerTasks:
    """The customer's task count, latest task and latest open task, read in one query."""
    rows = session.execute(_customer_tasks_query(), {"contact_id": contact_id}).all()
    if not rows:
        return CustomerTasks()
    tasks = sorted((task for task, _count in rows), key=lambda task: task.id)
    latest_open = next((task for task in reversed(tasks) if task.is_open), None)
    return CustomerTasks(count=rows[0][1], last=tasks[-1], open=latest_open)


@cache
def _customer_tasks_query() -> Select:
    of_contact = Task.contact_id == bindparam("contact_id")
    latest = select(func.max(Task.id)).where(of_contact).scalar_subquery()
    latest_open = (select(func.max(Task.id))
                   .where(of_contact, Task.status.in_(sorted(OPEN_STATUSES)))
                   .scalar_subquery())
    count = select(func.count(Task.id)).where(of_contact).scalar_subquery()
    # The caller holds the contact already: no join to load it again.
    return (select(Task, count).where(or_(Task.id == latest, Task.id == latest_open))
            .options(lazyload(Task.contact)))


def create_task(
    session: Session,
    *,
    title: str,
    category: str,
    priority: str,
    actor: Actor,
    contact_id: int | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
    **fields: Any,
) -> Task:
    """Adds a new task (status new) and its `created` audit event; returns it with its number."""
    now = now or utcnow()
    task = insert_row(session, Task, {
        **fields, "title": personal(title[:300], data_key_of(session, contact_id=contact_id)),
        "category": category, "priority": priority,
        "status": TaskStatus.NEW, "contact_id": contact_id, "created_at": now, "updated_at": now,
    })
    note_load(session, before=None, after=_load_of(task))
    start_chain(session, task_id=task.id)
    record_event(
        session,
        task=task,
        actor=actor.label,
        action=Audit.CREATED,
        to_status=TaskStatus.NEW,
        details=details,
        at=now,
    )
    return task


def transition_task(
    session: Session,
    *,
    task: Task,
    action: Action,
    actor: Actor,
    assignee_id: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> TaskStatus:
    """Moves `task` by `action` (written with the next flush) and writes the audit event, in
    the same transaction.

    Returns the new status. Raises IllegalTransition or NotAllowed (message for a person);
    a concurrent change of the same task makes the commit raise ConcurrentUpdate.
    """
    now = now or utcnow()
    source = task.status
    target = check_transition(task, action, actor)
    previous_assignee, previous_load = task.assignee_id, _load_of(task)
    _apply(task, action, target, actor=actor, assignee_id=assignee_id, now=now)
    note_load(session, before=previous_load, after=_load_of(task))
    event_details = dict(details or {})
    if reason:
        event_details["reason"] = reason
    if task.assignee_id != previous_assignee:
        event_details.update(assignee=task.assignee_id, previous_assignee=previous_assignee)
    record_event(
        session,
        task=task,
        actor=actor.label,
        action=action.value,
        from_status=source,
        to_status=target,
        details=event_details,
        at=now,
    )
    return target


def _load_of(task: Task) -> str | None:
    """The agent whose open tasks `task` counts among (routing by load), if any."""
    return task.assignee_id if task.status in OPEN_STATUSES else None


def _apply(
    task: Task, action: Action, target: TaskStatus, *, actor: Actor, assignee_id, now
) -> None:
    if action in (Action.ASSIGN, Action.REASSIGN):
        if not assignee_id:
            raise ValueError(f"{action.value} needs the agent to assign {task.ref} to")
        task.assignee_id, task.assigned_at, task.accepted_at = assignee_id, now, None
    elif action is Action.ACCEPT:
        task.assignee_id = task.assignee_id or actor.id
        task.accepted_at = now  # not a first response: the customer heard nothing yet
    elif action is Action.DECLINE:
        task.declined_by = sorted({*task.declined_by, task.assignee_id})
        task.assignee_id, task.accepted_at = None, None
    elif action is Action.WAIT:
        task.waiting_since = now
    elif action in (Action.START, Action.RESUME):
        task.waiting_since = None
    elif action is Action.RESOLVE:
        task.resolved_at = now
    elif action is Action.CLOSE:
        task.resolved_at = task.resolved_at or now
        task.closed_at, task.waiting_since = now, None
    elif action is Action.REOPEN:
        task.resolved_at = task.closed_at = None
        task.sla_started_at = now  # reminders count from here to the new due times
    task.status = target
    task.updated_at = now
    task.timer_generation += 1


def list_open_tasks(
    session: Session,
    *,
    assignee_id: str | None = None,
    teams: Collection[str] | None = None,
    unassigned: bool = False,
    seen_by: Actor | None = None,
    limit: int,
) -> list[Task]:
    """Up to `limit` open tasks, oldest first: of `assignee_id` when given, of `teams` when
    given (an empty collection matches no task), only those without an assignee when
    `unassigned`, only those `seen_by` may see when given (the lifecycle's permission)."""
    query = select(Task).where(Task.status.in_(sorted(OPEN_STATUSES)))
    visible = visible_to(seen_by) if seen_by is not None else None
    if visible is not None:
        query = query.where(visible)
    if assignee_id is not None:
        query = query.where(Task.assignee_id == assignee_id)
    if teams is not None:
        query = query.where(Task.team.in_(list(teams)))
    if unassigned:
        query = query.where(Task.assignee_id.is_(None))
    return list(session.scalars(query.order_by(Task.id).limit(limit)))


def list_waiting_tasks(session: Session, *, teams: Collection[str], limit: int) -> list[Task]:
    """Up to `limit` tasks of `teams` waiting for an agent (new, unassigned), oldest first."""
    query = select(Task).where(*_waiting_for_an_agent(teams)).order_by(Task.id).limit(limit)
    return list(session.scalars(query))


def count_waiting_tasks(session: Session, *, teams: Collection[str]) -> int:
    """How many tasks of `teams` wait for an agent (new, unassigned)."""
    query = select(func.count()).select_from(Task).where(*_waiting_for_an_agent(teams))
    return session.scalar(query) or 0


def _waiting_for_an_agent(teams: Collection[str]) -> tuple:
    return (Task.status == TaskStatus.NEW, Task.assignee_id.is_(None),
            Task.team.in_(list(teams)))


def count_open_tasks_by_status(session: Session, *, assignee_id: str) -> dict[str, int]:
    """The open tasks of `assignee_id` counted per status; statuses without one are absent."""
    query = (select(Task.status, func.count())
             .where(Task.assignee_id == assignee_id, Task.status.in_(sorted(OPEN_STATUSES)))
             .group_by(Task.status))
    return {status: count for status, count in session.execute(query)}


def count_closed_by(session: Session, *, actor: str, since: datetime) -> int:
    """How many times `actor` (an actor label, `agent:ana`) closed a task since `since`, as the
    audit trail tells."""
    query = select(func.count()).select_from(TaskEvent).where(
        TaskEvent.actor == actor, TaskEvent.action == Action.CLOSE.value, TaskEvent.at >= since)
    return session.scalar(query) or 0


def find_previous_assignee(session: Session, *, contact_id: int, task_id: int) -> str | None:
    """The agent of the customer's latest other task that had one (sticky routing), or None."""
    query = (
        select(Task.assignee_id)
        .where(Task.contact_id == contact_id, Task.id != task_id, Task.assignee_id.is_not(None))
        .order_by(Task.id.desc())
        .limit(1)
    )
    return session.scalar(query)


def set_due_times(session: Session, *, task: Task, first_response_due: datetime | None,
                  resolution_due: datetime | None) -> None:
    """Moves the task's due times (a settled pause) with a plain UPDATE: no version bump, so
    an agent's command on the same task at the same moment is not refused as a conflict."""
    set_committed_value(task, "first_response_due", first_response_due)
    set_committed_value(task, "resolution_due", resolution_due)
    session.execute(
        update(Task).where(Task.id == task.id)
        .values(first_response_due=first_response_due, resolution_due=resolution_due)
        .execution_options(synchronize_session=False)
    )


def record_first_response(session: Session, *, message: Message, at: datetime) -> bool:
    """First response = the first message a person sends to the customer. When `message` (an
    outbound row WhatsApp has just accepted) is an agent's reply and its task has no first
    response yet, sets it to `at` and moves the task's timer generation, so that its timers
    are planned again without the first-response reminders and breach. The automatic
    acknowledgement and the closing message never count. Returns whether it was set.

    One UPDATE that also moves the version: an agent's command on the task at the same
    moment is refused as a conflict rather than writing over it."""
    if message.task_id is None or not _is_reply(session, message):
        return False
    result = session.execute(
        update(Task).where(Task.id == message.task_id, Task.first_response_at.is_(None))
        .values(first_response_at=at, timer_generation=Task.timer_generation + 1,
                version=Task.version + 1)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount == 1


def _is_reply(session: Session, message: Message) -> bool:
    payloads = session.scalars(select(OutboxMessage.payload).where(
        OutboxMessage.task_id == message.task_id, OutboxMessage.kind == REPLY_KIND,
        OutboxMessage.channel == CUSTOMER_CHANNEL))
    return any((payload or {}).get("message_id") == message.id for payload in payloads)

"""Tasks: creation, look-up and every change of state, each with its audit event."""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.orm import Session, lazyload

from store.agents import note_load
from store.errors import NotFound
from store.events import Audit, record_event
from store.lifecycle import Action, Actor, check_transition
from store.models import OPEN_STATUSES, Task, TaskStatus
from store.rows import insert_row
from store.types import utcnow

_REF = re.compile(r"^\s*(?:T-?|#)?(\d{1,12})\s*$", re.IGNORECASE)


def parse_ref(ref: str | int) -> int:
    """The task number in `T-12`, `t12`, `#12` or `12`. Raises NotFound for anything else."""
    match = _REF.match(str(ref))
    if not match:
        raise NotFound(f"'{ref}' is not a task reference; write it as T-12 or 12")
    return int(match.group(1))


def get_task(session: Session, *, ref: str | int, for_update: bool = False) -> Task:
    """The task with this ref. Raises NotFound with a sentence naming the ref."""
    query = select(Task).where(Task.id == parse_ref(ref))
    if for_update:
        query = query.with_for_update(of=Task)
    task = session.scalars(query).first()
    if task is None:
        raise NotFound(f"There is no task T-{parse_ref(ref)}")
    return task


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
        **fields, "title": title[:300], "category": category, "priority": priority,
        "status": TaskStatus.NEW, "contact_id": contact_id, "created_at": now, "updated_at": now,
    })
    note_load(session, before=None, after=_load_of(task))
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
        task.accepted_at = now
        task.first_response_at = task.first_response_at or now
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
    task.status = target
    task.updated_at = now
    task.timer_generation += 1

"""Tasks: creation, look-up and every change of state, each with its audit event."""

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.errors import NotFound
from store.events import Audit, record_event
from store.lifecycle import Action, Actor, check_transition
from store.models import OPEN_STATUSES, Task, TaskStatus
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


def find_open_task(session: Session, *, contact_id: int) -> Task | None:
    """The customer's most recent open task, if any."""
    query = (
        select(Task)
        .where(Task.contact_id == contact_id, Task.status.in_(list(OPEN_STATUSES)))
        .order_by(Task.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def count_open_tasks(session: Session) -> dict[str, int]:
    """Open tasks per assignee, for routing by load and capacity."""
    query = (
        select(Task.assignee_id, func.count())
        .where(Task.status.in_(list(OPEN_STATUSES)), Task.assignee_id.is_not(None))
        .group_by(Task.assignee_id)
    )
    return {agent: count for agent, count in session.execute(query)}


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
    task = Task(
        title=title[:300],
        category=category,
        priority=priority,
        status=TaskStatus.NEW,
        contact_id=contact_id,
        created_at=now,
        updated_at=now,
        **fields,
    )
    session.add(task)
    session.flush()
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
    """Moves `task` by `action` and writes the audit event in the same transaction.

    Returns the new status. Raises IllegalTransition or NotAllowed (message for a person);
    a concurrent change of the same task makes the commit raise ConcurrentUpdate.
    """
    now = now or utcnow()
    source = task.status
    target = check_transition(task, action, actor)
    previous_assignee = task.assignee_id
    _apply(task, action, target, actor=actor, assignee_id=assignee_id, now=now)
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
    session.flush()
    return target


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

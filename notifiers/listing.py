"""The read-mostly verbs' text (tasks, show, stats) and agent availability (away, back)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from notifiers.commands import Context, UsageError
from notifiers.notifications import local_time
from store.errors import DomainError
from store.events import list_events
from store.lifecycle import Action
from store.models import OPEN_STATUSES, Task, TaskEvent, TaskStatus

LIST_LIMIT = 15
_OPEN = sorted(OPEN_STATUSES)


def tasks_text(context: Context, scope: str) -> str:
    """The `tasks` answer for scope mine | team | open | unassigned."""
    query = select(Task).where(Task.status.in_(_OPEN))
    teams = list(context.agent.teams)
    if scope == "mine":
        query = query.where(Task.assignee_id == context.agent.id)
    elif scope == "team":
        query = query.where(Task.team.in_(teams))
    elif scope == "unassigned":
        query = query.where(Task.assignee_id.is_(None))
        if not context.actor.admin:
            query = query.where(Task.team.in_(teams))
    elif scope != "open":
        raise UsageError("Usage: tasks [mine|team|open|unassigned]")
    found = list(context.session.scalars(query.order_by(Task.id).limit(LIST_LIMIT + 1)))
    if not found:
        return f"No {scope if scope != 'mine' else 'open tasks of yours'} right now."
    lines = [_line(task) for task in found[:LIST_LIMIT]]
    if len(found) > LIST_LIMIT:
        lines.append(f"… and more; showing the first {LIST_LIMIT}")
    return "\n".join(lines)


def _line(task: Task) -> str:
    who = task.assignee_id or "unassigned"
    return f"{task.ref} · {task.status.replace('_', ' ')} · {task.priority} · {who} · {task.title}"


def show_text(context: Context, task: Task) -> str:
    """A task's fields and its last five audit events."""
    contact = task.contact
    lines = [
        f"{task.ref}: {task.title}",
        f"Status: {task.status.replace('_', ' ')} · Priority: {task.priority} · "
        f"Team: {task.team or '-'} · Assignee: {task.assignee_id or '-'}",
        f"Customer: {(contact.name or contact.wa_id) if contact else '-'}",
    ]
    if task.first_response_due:
        lines.append(f"First response due: {local_time(task.first_response_due, context.config)}")
    if task.resolution_due:
        lines.append(f"Resolution due: {local_time(task.resolution_due, context.config)}")
    for event in list_events(context.session, task_id=task.id)[-5:]:
        move = f" {event.from_status or ''}→{event.to_status}" if event.to_status else ""
        lines.append(f"  {local_time(event.at, context.config)} {event.actor} {event.action}{move}")
    return "\n".join(lines)


def stats_text(context: Context) -> str:
    """Open tasks of the agent by status, team tasks waiting, closed in the last 7 days."""
    session, agent = context.session, context.agent
    by_status = dict(session.execute(
        select(Task.status, func.count()).where(
            Task.assignee_id == agent.id, Task.status.in_(_OPEN)).group_by(Task.status)).all())
    waiting = session.scalar(select(func.count()).select_from(Task).where(
        Task.status == TaskStatus.NEW, Task.assignee_id.is_(None),
        Task.team.in_(list(agent.teams))))
    closed = session.scalar(select(func.count()).select_from(TaskEvent).where(
        TaskEvent.actor == context.actor.label, TaskEvent.action == Action.CLOSE.value,
        TaskEvent.at >= context.now - timedelta(days=7)))
    mine = ", ".join(f"{count} {status.replace('_', ' ')}" for status, count in
                     sorted(by_status.items())) or "none"
    return (f"Your open tasks: {mine}.\nWaiting for your teams: {waiting or 0}.\n"
            f"Closed by you in the last 7 days: {closed or 0}.")


def set_availability(context: Context, *, away: bool) -> None:
    """Marks the agent away or back (store.agents, owned by intake)."""
    try:
        from store.agents import set_away
    except ImportError as exc:  # the agents store ships with intake; say so, do not crash
        raise DomainError("away/back is not available in this build yet") from exc
    set_away(context.session, agent_id=context.agent.id, away=away)
    context.session.flush()


def route_waiting(context: Context) -> str:
    """Routes the unassigned tasks of the agent's teams again, now that they are back."""
    if context.assign is None:
        return ""
    query = select(Task).where(
        Task.status == TaskStatus.NEW, Task.assignee_id.is_(None),
        Task.team.in_(list(context.agent.teams))).order_by(Task.id).limit(LIST_LIMIT)
    routed = []
    for task in context.session.scalars(query).all():
        result = context.assign(context.session, config=context.config, task=task,
                                now=context.now, exclude=tuple(task.declined_by))
        routed.append(f"{task.ref} → {result.agent_id or 'still waiting'}")
    if not routed:
        return "No tasks are waiting for your teams."
    return "Waiting tasks routed: " + ", ".join(routed)

"""The read-mostly verbs' text (tasks, show, stats) and agent availability (away, back)."""

from __future__ import annotations

from datetime import timedelta

from notifiers.grammar import Context, UsageError
from notifiers.notifications import local_time, window_text
from notifiers.texts import shorten
from store.agents import set_away
from store.events import Audit, list_events
from store.messages import list_task_messages
from store.models import Direction, Task
from store.tasks import (
    count_closed_by,
    count_open_tasks_by_status,
    count_waiting_tasks,
    list_open_tasks,
    list_waiting_tasks,
)

LIST_LIMIT = 15
CONVERSATION_SHOWN = 10  # `show` quotes this many of the task's last messages
MESSAGE_LINE = 300  # … each cut to this many characters: the answer stays one screen
SCOPES = ("mine", "team", "open", "unassigned")


def tasks_text(context: Context, scope: str) -> str:
    """The `tasks` answer for scope mine | team | open | unassigned.

    Raises UsageError for any other scope.
    """
    found = _tasks_in_scope(context, scope)
    if not found:
        return f"No {scope if scope != 'mine' else 'open tasks of yours'} right now."
    lines = [_line(task) for task in found[:LIST_LIMIT]]
    if len(found) > LIST_LIMIT:
        lines.append(f"… and more; showing the first {LIST_LIMIT}")
    return "\n".join(lines)


def _tasks_in_scope(context: Context, scope: str) -> list[Task]:
    """Up to one more than LIST_LIMIT open tasks (so the answer can say there are more), of
    those the agent may see: an agent's or supervisor's teams' and their own, an admin's all."""
    session, actor, limit = context.session, context.actor, LIST_LIMIT + 1
    if scope == "mine":
        return list_open_tasks(session, assignee_id=context.agent.id, seen_by=actor, limit=limit)
    if scope == "team":
        return list_open_tasks(session, teams=actor.all_teams, seen_by=actor, limit=limit)
    if scope == "unassigned":
        return list_open_tasks(session, unassigned=True, seen_by=actor, limit=limit)
    if scope == "open":
        return list_open_tasks(session, seen_by=actor, limit=limit)
    raise UsageError(f"Usage: tasks [{'|'.join(SCOPES)}]")


def _line(task: Task) -> str:
    who = task.assignee_id or "unassigned"
    return f"{task.ref} · {task.status.replace('_', ' ')} · {task.priority} · {who} · {task.title}"


def show_text(context: Context, task: Task) -> str:
    """A task's fields, why it went where it is, its conversation and its last five audit
    events."""
    contact = task.contact
    lines = [
        f"{task.ref}: {task.title}",
        f"Status: {task.status.replace('_', ' ')} · Priority: {task.priority} · "
        f"Team: {task.team or '-'} · Assignee: {task.assignee_id or '-'}",
        f"Customer: {(contact.name or contact.wa_id) if contact else '-'}",
    ]
    if contact is not None:
        lines.append(f"CRM: {contact.crm_status or 'lead'} · tags: "
                     f"{', '.join(contact.tags or ()) or '-'}")
        lines.append(f"Reply window: {window_text(contact, context.config, now=context.now)}")
    if task.first_response_due:
        lines.append(f"First response due: {local_time(task.first_response_due, context.config)}")
    if task.resolution_due:
        lines.append(f"Resolution due: {local_time(task.resolution_due, context.config)}")
    lines += _routing_lines(context, task) + _conversation_lines(context, task)
    lines.append("Events:")
    for event in list_events(context.session, task_id=task.id)[-5:]:
        move = f" {event.from_status or ''}→{event.to_status}" if event.to_status else ""
        lines.append(f"  {local_time(event.at, context.config)} {event.actor} {event.action}{move}")
    return "\n".join(lines)


def _routing_lines(context: Context, task: Task) -> list[str]:
    """The latest routing: its summary and the reason for every candidate."""
    routed = list_events(context.session, task_id=task.id, action=Audit.ROUTED)
    if not routed:
        return []
    details = routed[-1].details or {}
    lines = [f"Routing: {details.get('summary') or '-'}"]
    for candidate in (details.get("candidates") or ())[:LIST_LIMIT]:
        lines.append(f"  {candidate.get('agent')}: {candidate.get('reason')}")
    return lines


def _conversation_lines(context: Context, task: Task) -> list[str]:
    """The task's last messages, both ways, each cut to a line's room."""
    messages = list_task_messages(context.session, task_id=task.id, limit=CONVERSATION_SHOWN)
    if not messages:
        return []
    lines = ["Conversation:"]
    for message in messages:
        who = "customer" if message.direction == Direction.INBOUND else "us"
        if message.via == "template":
            who += " (template)"
        when = local_time(message.sent_at or message.created_at, context.config)
        text = message.text or f"[{message.type}]"
        lines.append(f"  {when} {who}: {shorten(' '.join(text.split()), MESSAGE_LINE)}")
    return lines


def stats_text(context: Context) -> str:
    """Open tasks of the agent by status, team tasks waiting, closed in the last 7 days."""
    session, agent = context.session, context.agent
    by_status = count_open_tasks_by_status(session, assignee_id=agent.id)
    waiting = count_waiting_tasks(session, teams=context.actor.all_teams)
    closed = count_closed_by(session, actor=context.actor.label,
                             since=context.now - timedelta(days=7))
    mine = ", ".join(f"{count} {status.replace('_', ' ')}" for status, count in
                     sorted(by_status.items())) or "none"
    return (f"Your open tasks: {mine}.\nWaiting for your teams: {waiting}.\n"
            f"Closed by you in the last 7 days: {closed}.")


def set_availability(context: Context, *, away: bool) -> None:
    """Marks the agent away (no new tasks are routed to them) or back."""
    set_away(context.session, agent_id=context.agent.id, away=away)
    context.session.flush()


def route_waiting(context: Context) -> str:
    """Routes the unassigned tasks of the agent's teams again, now that they are back.

    Returns what happened to each, as a sentence (empty when no assigner was given).
    """
    if context.assign is None:
        return ""
    routed = []
    for task in list_waiting_tasks(context.session, teams=context.agent.teams, limit=LIST_LIMIT):
        result = context.assign(context.session, config=context.config, task=task,
                                now=context.now, exclude=tuple(task.declined_by))
        routed.append(f"{task.ref} → {result.agent_id or 'still waiting'}")
    if not routed:
        return "No tasks are waiting for your teams."
    return "Waiting tasks routed: " + ", ".join(routed)

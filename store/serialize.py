"""Plain-dict views of stored rows, for `--json` output and job payloads."""

from datetime import datetime
from typing import Any

from store.models import Task, TaskEvent


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def task_as_dict(task: Task) -> dict[str, Any]:
    """The task's fields, times as ISO 8601 UTC."""
    contact = task.contact
    return {
        "ref": task.ref,
        "number": task.number,
        "title": task.title,
        "status": task.status,
        "category": task.category,
        "priority": task.priority,
        "tags": list(task.tags),
        "stage": task.stage,
        "team": task.team,
        "assignee": task.assignee_id,
        "rule": task.rule,
        "contact": {"wa_id": contact.wa_id, "name": contact.name} if contact else None,
        "first_response_due": _iso(task.first_response_due),
        "resolution_due": _iso(task.resolution_due),
        "created_at": _iso(task.created_at),
        "accepted_at": _iso(task.accepted_at),
        "first_response_at": _iso(task.first_response_at),
        "resolved_at": _iso(task.resolved_at),
        "closed_at": _iso(task.closed_at),
    }


def event_as_dict(event: TaskEvent) -> dict[str, Any]:
    """An audit event's fields, time as ISO 8601 UTC."""
    return {
        "at": _iso(event.at),
        "actor": event.actor,
        "action": event.action,
        "from": event.from_status,
        "to": event.to_status,
        "details": event.details,
    }

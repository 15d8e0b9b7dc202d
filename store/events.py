"""The audit trail: every change of a task is written here, in the caller's transaction."""

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import Insert, insert, or_, select
from sqlalchemy.orm import Session

from store.models import Task, TaskEvent, TaskStatus
from store.types import utcnow


class Audit(StrEnum):
    """Audit actions that are not state transitions (those are named by lifecycle.Action)."""

    CREATED = "created"
    ROUTED = "routed"  # details: agent, summary, candidates, automatic
    UNROUTED = "unrouted"  # nobody available: waiting for the team
    MESSAGE = "message"  # a customer message threaded into the task
    NOTE = "note"
    REPLY = "reply"  # an agent's reply relayed to the customer
    REMINDER = "reminder"  # details: kind (first_response|resolution), percent
    ESCALATED = "escalated"  # details: step (notify_supervisor|reassign|raise_priority)
    OFFER_EXPIRED = "offer_expired"  # not accepted within unaccepted_after
    SLA_RESUMED = "sla_resumed"  # the customer answered: due times pushed by the pause
    ARRIVED_LATE = "arrived_late"  # a deadline had passed before the message reached us;
    # details: reason, sent_at, received_at, missed (deadline -> due), summary_at
    DELIVERY_FAILED = "delivery_failed"
    RATED = "rated"  # details: rating (1-5)
    DENIED = "denied"  # an unknown user or a refused command
    MESSAGE_EDITED = "message_edited"  # details: message_id, text, previous
    MESSAGE_DELETED = "message_deleted"  # the customer deleted a message: details: message_id
    CONTACT_CHANGED = "contact_changed"  # a new number: details: old_wa_id, new_wa_id
    WHATSAPP_ERROR = "whatsapp_error"  # no task: Meta reported an error (code, title, details)


def record_event(
    session: Session,
    *,
    task: Task | None,
    actor: str,
    action: str,
    from_status: str | None = None,
    to_status: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Appends an audit event (the only writer of task_events); `task` must be in the
    database already (it is once it has an id).

    The row is written at once with a plain INSERT: events are never changed afterwards, and
    the ORM's unit of work would cost several times more per event.
    """
    values = {"task_id": task.id if task is not None else None, "actor": actor,
              "action": action, "from_status": from_status, "to_status": to_status,
              "details": details or {}, "at": at or utcnow()}
    session.connection().execute(_insert_event(), values)


@cache
def _insert_event() -> Insert:
    return insert(TaskEvent.__table__)


def list_events(session: Session, *, task_id: int, action: str | None = None) -> list[TaskEvent]:
    """The audit events of one task (only those of `action` when given), oldest first."""
    query = select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.id)
    if action is not None:
        query = query.where(TaskEvent.action == action)
    return list(session.scalars(query))


def list_wait_events(session: Session, *, task_ids: Sequence[int]) -> dict[int, list[TaskEvent]]:
    """Per task of `task_ids`, oldest first: its transitions into and out of
    waiting_customer and its `sla_resumed` settlements (what settling a pause reads)."""
    waits = or_(TaskEvent.to_status == TaskStatus.WAITING_CUSTOMER,
                TaskEvent.from_status == TaskStatus.WAITING_CUSTOMER,
                TaskEvent.action == Audit.SLA_RESUMED)
    query = (select(TaskEvent).where(TaskEvent.task_id.in_(list(task_ids)), waits)
             .order_by(TaskEvent.id))
    found: dict[int, list[TaskEvent]] = {}
    for event in session.scalars(query):
        found.setdefault(event.task_id, []).append(event)
    return found

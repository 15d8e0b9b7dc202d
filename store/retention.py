"""Data retention: count and delete what is older than a cutoff, a bounded batch at a time.

The caller computes every cutoff from its own `now` (nothing here reads the clock) and runs
each delete in a transaction of its own, so that a long backlog never holds locks for long.
"""

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from store.models import (
    EventStatus,
    IdempotentRequest,
    InboundEvent,
    Message,
    OutboxMessage,
    RuleDecision,
    Survey,
    Task,
    TaskEvent,
    TaskStatus,
    WebhookAttempt,
    WebhookDelivery,
)

_DONE_EVENT = (InboundEvent.status == EventStatus.PROCESSED,)
_RETRYABLE_EVENT = (InboundEvent.status.in_([EventStatus.FAILED, EventStatus.PENDING]),)


def count_raw_events(session: Session, *, before: datetime) -> int:
    """Processed raw events received before `before`: what a run would delete."""
    query = select(func.count()).where(InboundEvent.received_at < before, *_DONE_EVENT)
    return session.scalar(query) or 0


def count_kept_raw_events(session: Session, *, before: datetime) -> int:
    """Failed or pending raw events received before `before`: kept, since they can be retried."""
    query = select(func.count()).where(InboundEvent.received_at < before, *_RETRYABLE_EVENT)
    return session.scalar(query) or 0


def delete_raw_events(session: Session, *, before: datetime, limit: int) -> int:
    """Deletes up to `limit` processed raw events received before `before`; returns how many."""
    ids = list(session.scalars(
        select(InboundEvent.id).where(InboundEvent.received_at < before, *_DONE_EVENT)
        .order_by(InboundEvent.id).limit(limit)))
    return _delete_ids(session, InboundEvent, ids)


def count_messages(session: Session, *, before: datetime) -> int:
    """Messages (both directions) created before `before`."""
    return session.scalar(select(func.count()).where(Message.created_at < before)) or 0


def delete_messages(session: Session, *, before: datetime, limit: int) -> int:
    """Deletes up to `limit` messages created before `before`; returns how many."""
    ids = list(session.scalars(select(Message.id).where(Message.created_at < before)
                               .order_by(Message.id).limit(limit)))
    if ids:  # a recorded rules decision cannot be replayed without its message
        session.execute(delete(RuleDecision).where(RuleDecision.message_id.in_(ids))
                        .execution_options(synchronize_session=False))
    return _delete_ids(session, Message, ids)


def count_closed_tasks(session: Session, *, before: datetime) -> int:
    """Tasks closed before `before`."""
    return session.scalar(select(func.count()).where(*_closed_before(before))) or 0


def list_closed_tasks(session: Session, *, before: datetime, limit: int) -> list[int]:
    """The ids of up to `limit` tasks closed before `before`, oldest id first. On PostgreSQL
    the rows stay locked until the transaction ends (another run skips them)."""
    query = (select(Task.id).where(*_closed_before(before)).order_by(Task.id).limit(limit)
             .with_for_update(skip_locked=True))
    return list(session.scalars(query))


def delete_tasks(session: Session, *, task_ids: list[int]) -> int:
    """Deletes the tasks `task_ids` with their outbox rows, messages, audit events, survey and
    recorded rules decisions (the rows whose foreign keys point at them, removed first);
    returns how many tasks went."""
    if not task_ids:
        return 0
    messages = select(Message.id).where(Message.task_id.in_(task_ids))
    session.execute(delete(RuleDecision).where(RuleDecision.task_id.in_(task_ids)
                                               | RuleDecision.message_id.in_(messages))
                    .execution_options(synchronize_session=False))
    for model in (Survey, OutboxMessage, Message, TaskEvent):
        session.execute(delete(model).where(model.task_id.in_(task_ids))
                        .execution_options(synchronize_session=False))
    return _delete_ids(session, Task, task_ids)


def _closed_before(before: datetime) -> tuple:
    return Task.status == TaskStatus.CLOSED, Task.closed_at < before


def _delete_ids(session: Session, model, ids: list[int]) -> int:
    if not ids:
        return 0
    result = session.execute(delete(model).where(model.id.in_(ids))
                             .execution_options(synchronize_session=False))
    return result.rowcount


# Outgoing webhooks and API idempotency records are transport records, like raw events: they
# go with `retention.raw_events` (a delivery once it is finished, with its attempts).
_FINISHED = (WebhookDelivery.status.in_(("delivered", "failed", "cancelled")),)


def count_finished_deliveries(session: Session, *, before: datetime) -> int:
    """Outgoing webhooks delivered, given up or cancelled, queued before `before`."""
    query = select(func.count()).where(WebhookDelivery.created_at < before, *_FINISHED)
    return session.scalar(query) or 0


def delete_finished_deliveries(session: Session, *, before: datetime, limit: int) -> int:
    """Deletes up to `limit` finished deliveries queued before `before`, with their attempts;
    returns how many deliveries went."""
    ids = list(session.scalars(
        select(WebhookDelivery.id).where(WebhookDelivery.created_at < before, *_FINISHED)
        .order_by(WebhookDelivery.id).limit(limit)))
    if ids:
        session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids))
                        .execution_options(synchronize_session=False))
    return _delete_ids(session, WebhookDelivery, ids)


def count_idempotent_requests(session: Session, *, before: datetime) -> int:
    """API answers kept for Idempotency-Key retries, stored before `before`."""
    query = select(func.count()).where(IdempotentRequest.created_at < before)
    return session.scalar(query) or 0


def delete_idempotent_requests(session: Session, *, before: datetime, limit: int) -> int:
    """Deletes up to `limit` of them; returns how many went."""
    ids = list(session.scalars(select(IdempotentRequest.id)
                               .where(IdempotentRequest.created_at < before)
                               .order_by(IdempotentRequest.id).limit(limit)))
    return _delete_ids(session, IdempotentRequest, ids)

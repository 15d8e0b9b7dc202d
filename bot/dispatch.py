"""Dispatch after commit: turn what the database says is still to do into RQ jobs.

Every web handler and job calls `dispatch_pending(services)` after its transaction commits.
Rows are claimed with a conditional UPDATE in the same transaction that enqueues their jobs,
so two processes dispatching at once never enqueue the same row twice, and a Redis failure
rolls the claim back (the row stays undispatched and the sweeper retries it).
"""

import logging

from redis.exceptions import RedisError
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bot.jobs import make_job_id
from bot.services import Services
from store.models import EventStatus, InboundEvent, OutboxMessage, OutboxStatus, Task
from store.types import utcnow

log = logging.getLogger(__name__)

PROCESS_EVENT = "bot.processing.process_event_job"
DELIVER = "bot.delivery.deliver_job"
BATCH = 500


def event_job_id(event_id: int) -> str:
    return make_job_id("event", event_id)


def outbox_job_id(outbox_id: int) -> str:
    return make_job_id("outbox", outbox_id)


def dispatch_pending(services: Services) -> None:
    """Enqueues a job for every undispatched event, outbox row and task timer change.

    Never raises for Redis or database trouble: it logs, and the sweeper re-drives later.
    """
    for step in (dispatch_events, dispatch_outbox, dispatch_timers):
        try:
            while step(services) >= BATCH:
                pass
        except (RedisError, OSError) as exc:
            log.warning("dispatch: Redis unavailable (%s); the sweeper will retry", exc)
            return
        except Exception:  # a dispatch failure must never fail the caller's request
            log.exception("dispatch: %s failed; the sweeper will retry", step.__name__)


def dispatch_events(services: Services) -> int:
    """Claims and enqueues pending inbound events; returns how many were claimed."""
    return _dispatch_rows(services, InboundEvent, EventStatus.PENDING, PROCESS_EVENT,
                          event_job_id)


def dispatch_outbox(services: Services) -> int:
    """Claims and enqueues pending outbox rows; returns how many were claimed."""
    return _dispatch_rows(services, OutboxMessage, OutboxStatus.PENDING, DELIVER, outbox_job_id)


def _dispatch_rows(services: Services, model, pending: str, func: str, job_id) -> int:
    conditions = (model.dispatched_at.is_(None), model.status == pending)
    with services.db.transaction(readonly=True) as session:  # mostly nothing to do: no lock
        if session.scalar(select(model.id).where(*conditions).limit(1)) is None:
            return 0
    with services.db.transaction() as session:
        ids = _claim(session, model, *conditions)
        services.jobs.enqueue_many(func, [(job_id(i), (i,)) for i in ids])
    return len(ids)


def dispatch_timers(services: Services) -> int:
    """Schedules the timers of tasks whose generation moved on; returns how many tasks."""
    from bot.timers import schedule_task_timers, settle_pauses  # timers import dispatch

    stale = or_(
        Task.scheduled_generation.is_(None), Task.scheduled_generation != Task.timer_generation
    )
    with services.db.transaction(readonly=True) as session:  # mostly nothing to do: no lock
        if session.scalar(select(Task.id).where(stale).limit(1)) is None:
            return 0
    with services.db.transaction() as session:
        ids = list(session.scalars(select(Task.id).where(stale).order_by(Task.id).limit(BATCH)))
        if not ids:
            return 0
        claimed = session.scalars(
            update(Task)
            .where(Task.id.in_(ids), stale)
            .values(scheduled_generation=Task.timer_generation)
            .returning(Task.id)
            .execution_options(synchronize_session=False)
        ).all()
        now, config = utcnow(), services.rules.current
        for task in session.scalars(select(Task).where(Task.id.in_(claimed))):
            settle_pauses(session, config, task)
            schedule_task_timers(services, task, now=now)
    return len(ids)


def _claim(session: Session, model, *conditions) -> list[int]:
    ids = list(session.scalars(select(model.id).where(*conditions).order_by(model.id).limit(BATCH)))
    if not ids:
        return []
    claimed = session.scalars(
        update(model)
        .where(model.id.in_(ids), *conditions)
        .values(dispatched_at=utcnow())
        .returning(model.id)
        .execution_options(synchronize_session=False)
    ).all()
    return sorted(claimed)

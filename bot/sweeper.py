"""The sweeper: re-drives from the database whatever Redis lost or a dead worker dropped.

Workers run `sweep` every few seconds (see `bot.worker`). It is safe to run it in several
processes at once: every job id is deterministic and every job is idempotent.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from rq.job import Job
from rq.registry import StartedJobRegistry
from sqlalchemy import select

from bot.digest import schedule_digests
from bot.dispatch import DELIVER, PROCESS_EVENT, dispatch_pending, event_job_id, outbox_job_id
from bot.services import Services
from bot.timers import restore_missing_timers
from store.models import (
    OPEN_STATUSES,
    EventStatus,
    InboundEvent,
    OutboxMessage,
    OutboxStatus,
    Task,
    TaskStatus,
)
from store.types import utcnow

log = logging.getLogger(__name__)

ALIVE_KEY = "opsbot:alive:{}"
GRACE = timedelta(seconds=5)


@dataclass
class SweepReport:
    events: list[int] = field(default_factory=list)
    outbox: list[int] = field(default_factory=list)
    timers: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.events) + len(self.outbox) + len(self.timers) + len(self.abandoned)


def sweep(services: Services, *, now: datetime | None = None) -> SweepReport:
    """One pass: dispatch what is new, requeue jobs of dead workers, restore lost jobs,
    and make sure every agent's next daily digest is scheduled."""
    now = now or utcnow()
    report = SweepReport()
    try:
        report.abandoned = requeue_abandoned(services)
        dispatch_pending(services)
        report.events = redrive_events(services, now=now)
        report.outbox = redrive_outbox(services, now=now)
        report.timers = restore_timers(services, now=now)
        schedule_digests(services, now=now)
    except (RedisError, OSError) as exc:
        log.warning("sweep: Redis unavailable (%s); next pass will retry", exc)
    if report.total:
        log.info("sweep re-drove %s", report)
    return report


def redrive_events(services: Services, *, now: datetime) -> list[int]:
    """Pending events that were dispatched but whose job is gone from Redis."""
    return _redrive(services, InboundEvent, EventStatus.PENDING, PROCESS_EVENT, event_job_id,
                    now=now)


def redrive_outbox(services: Services, *, now: datetime) -> list[int]:
    """Pending outbox rows that were dispatched but whose job is gone from Redis."""
    return _redrive(services, OutboxMessage, OutboxStatus.PENDING, DELIVER, outbox_job_id,
                    now=now)


def _redrive(services: Services, model, pending: str, func: str, job_id, *, now) -> list[int]:
    with services.db.transaction(readonly=True) as session:
        ids = session.scalars(
            select(model.id).where(model.status == pending, model.dispatched_at < now - GRACE)
        ).all()
    lost = [i for i in ids if not services.jobs.exists(job_id(i))]
    for row_id in lost:
        services.jobs.enqueue(func, row_id, job_id=job_id(row_id))
    return lost


def restore_timers(services: Services, *, now: datetime) -> list[str]:
    """Timers of the current generation (already scheduled once) missing from Redis."""
    active = set(OPEN_STATUSES) - {TaskStatus.WAITING_CUSTOMER}
    restored = []
    with services.db.transaction() as session:
        tasks = session.scalars(
            select(Task).where(
                Task.status.in_(list(active)),
                Task.scheduled_generation == Task.timer_generation,
            )
        ).all()
        for start in range(0, len(tasks), 500):
            restored += restore_missing_timers(services, list(tasks[start : start + 500]), now=now)
    return restored


def requeue_abandoned(services: Services) -> list[str]:
    """Jobs left STARTED by a worker that is no longer alive (killed): run them again.

    RQ itself notices such jobs only minutes later; our workers keep an `opsbot:alive:<name>`
    key with a short TTL, so a missing key means the worker is gone.
    """
    registry = StartedJobRegistry(queue=services.jobs.queue)
    requeued = []
    for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False):
        job = Job.fetch_many([job_id], connection=services.redis)[0]
        if job is not None and not job.worker_name:
            continue
        if job is not None and services.redis.exists(ALIVE_KEY.format(job.worker_name)):
            continue
        services.redis.zrem(registry.key, f"{job_id}:{execution_id}")
        if job is not None:
            services.jobs.queue.enqueue_job(job)
            requeued.append(job_id)
    return requeued

"""The sweeper: re-drives from the database whatever Redis lost or a dead worker dropped.

Workers run `sweep` every few seconds (see `bot.worker.process`). It is safe to run it in several
processes at once: claims are only freed when their job is gone, and every job is idempotent.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime

from redis.exceptions import RedisError
from rq.job import Job
from rq.registry import StartedJobRegistry

from bot.core import tunables
from bot.core.services import Services
from bot.usecases.audit import keep_audit
from bot.usecases.retention import retain_daily
from bot.worker.drains import has_work, redrive_webhooks, request_drain
from bot.worker.timers import has_due_timers, restore_missing_timers, schedule_digests
from store.claims import held_claims, release
from store.models import InboundEvent, OutboxMessage
from store.timers import list_tasks_with_timers
from store.types import utcnow

log = logging.getLogger(__name__)

ALIVE_KEY = "opsbot:alive:{}"
TIMERS_CHECKED_KEY = "opsbot:timers:checked"


@dataclass
class SweepReport:
    events: list[int] = field(default_factory=list)  # freed: their job was gone
    outbox: list[int] = field(default_factory=list)
    timers: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.events) + len(self.outbox) + len(self.timers) + len(self.abandoned)


def sweep(services: Services, *, now: datetime | None = None) -> SweepReport:
    """One pass: requeue the jobs of dead workers, free the rows of jobs that are gone,
    restore lost timers, ask for a drain when work waits or a timer is due, and make sure
    every agent's next daily digest is scheduled."""
    now = now or utcnow()
    report = SweepReport()
    try:
        report.abandoned = requeue_abandoned(services)
        report.events = free_orphans(services, InboundEvent, now=now)
        report.outbox = free_orphans(services, OutboxMessage, now=now)
        if has_work(services) or has_due_timers(services.jobs, now=now):
            request_drain(services)  # due timers: the scheduler's tick asks too, if it runs
        report.timers = restore_timers(services, now=now)
        schedule_digests(services.jobs, services.rules.current, now=now)
        retain_daily(services, now=now)
        redrive_webhooks(services, now=now)  # frees lost claims, asks when due
        keep_audit(services, now=now)  # last: an error there stops no other step
    except (RedisError, OSError) as exc:
        log.warning("sweep: Redis unavailable (%s); next pass will retry", exc)
    if report.total:
        log.info("sweep re-drove %s", report)
    return report


def free_orphans(services: Services, model, *, now: datetime) -> list[int]:
    """Frees pending rows claimed (more than GRACE ago) by a job that no longer exists:
    Redis lost it, or it ended without finishing them. Returns their ids."""
    with services.db.transaction(readonly=True) as session:
        held = held_claims(session, model, before=now - tunables.GRACE)
    gone = {owner: ids for owner, ids in held.items()
            if owner is None or not services.jobs.exists(owner)}
    if gone:
        with services.db.transaction() as session:
            for owner, ids in gone.items():
                release(session, model, ids, owner=owner)
    return sorted(i for ids in gone.values() for i in ids)


def restore_timers(services: Services, *, now: datetime) -> list[str]:
    """The timers of the current generation missing from Redis, looked for when Redis lost
    its data and otherwise every TIMERS_CHECK_EVERY.

    Timers go missing with Redis's data (a restart without persistence, a FLUSHDB) or, on a
    Redis that evicts keys, one by one. TIMERS_CHECKED_KEY (with that TTL) says that a look
    happened: while it is there a sweep costs one SET NX, not a look at every open task. It
    is set before the look, so that a loss during the look is seen next time; one process
    looks at a time.
    """
    if not services.redis.set(TIMERS_CHECKED_KEY, 1, nx=True, ex=tunables.TIMERS_CHECK_EVERY):
        return []
    try:
        return _restore_timers(services, now=now)
    except Exception:
        services.redis.delete(TIMERS_CHECKED_KEY)  # the next sweep looks again
        raise


def _restore_timers(services: Services, *, now: datetime) -> list[str]:
    with services.db.transaction(readonly=True) as session:
        tasks = list_tasks_with_timers(session)
    config, batch, restored = services.rules.current, tunables.TIMERS_RESTORE_BATCH, []
    for start in range(0, len(tasks), batch):
        restored += restore_missing_timers(services.jobs, config, tasks[start:start + batch],
                                           now=now)
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

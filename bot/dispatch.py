"""Drains: workers turn what the database says is still to do into work, in batches.

Every writer (the webhooks, agent commands, jobs, the CLI) calls `request_drain` after its
commit: one Redis SET NX and, when no drain is already waiting in the queue, the enqueue of
one `drain_job`. In ONE transaction a drain applies a batch of pending inbound events,
schedules the timers of the tasks that changed and claims a batch of outbox rows (the
notifications it just queued among them); after the commit it sends those rows. While work
remains it asks for another drain, so that drains interleave with the other jobs and every
worker takes a share. On SQLite, one transaction per drain means one wait for the writer
lock, and the sends of one worker overlap the transaction of the other. Nothing depends on
Redis keeping anything: the sweeper asks for a drain whenever the database holds free work,
and frees the rows of a job that is gone.

Why batches: one RQ job costs a worker ~4 ms (about 20 Redis round trips), so a job per
message and per notification capped a worker at a few dozen messages per second.
"""

import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from redis.exceptions import RedisError
from rq import get_current_job
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bot.jobs import FAILURE_TTL, JOB_TIMEOUT, make_job_id
from bot.services import Services
from store.claims import has_free
from store.models import InboundEvent, OutboxMessage, Task
from store.types import utcnow

log = logging.getLogger(__name__)

DRAIN = "bot.dispatch.drain_job"
WAITING_KEY = "opsbot:drain:waiting"
WAITING_TTL = 10  # seconds; a waiting drain lost with Redis blocks new requests no longer
EVENT_BATCH = 25
OUTBOX_BATCH = 50
TIMER_BATCH = 500


@dataclass
class Drained:
    events: int = 0
    timers: int = 0
    outbox: int = 0
    more: bool = False  # a batch was full: work remains

    def __str__(self) -> str:
        return (f"{self.events} event(s), {self.timers} task(s) with new timers, "
                f"{self.outbox} outbox row(s)")


def request_drain(services: Services) -> None:
    """Makes sure a drain runs soon. Never raises: on Redis trouble it logs, and the sweeper
    asks again."""
    try:
        if services.redis.set(WAITING_KEY, 1, nx=True, ex=WAITING_TTL):
            services.jobs.queue.enqueue(
                DRAIN, job_id=make_job_id("drain", uuid.uuid4().hex), result_ttl=0,
                failure_ttl=FAILURE_TTL, job_timeout=JOB_TIMEOUT,
            )
    except (RedisError, OSError) as exc:
        log.warning("drain request: Redis unavailable (%s); the sweeper will ask again", exc)
        with contextlib.suppress(RedisError, OSError):  # else the key expires on its own
            services.redis.delete(WAITING_KEY)


def drain_job() -> str:
    """RQ entry point: one round of work (see `drain_once`)."""
    from bot.runtime import current_services

    job = get_current_job()
    return str(drain_once(current_services(), owner=job.id if job else _local_owner()))


def drain(services: Services) -> Drained:
    """Works in this process until nothing is left (tests, `--burst` style callers)."""
    owner, total = _local_owner(), Drained()
    while True:
        step = drain_once(services, owner=owner, request_more=False)
        total.events += step.events
        total.timers += step.timers
        total.outbox += step.outbox
        if not step.more:
            return total


def drain_once(services: Services, *, owner: str, request_more: bool = True) -> Drained:
    """One batch of each kind of work, claimed for `owner` (a job id); asks for another
    drain when a batch was full. Never raises: what fails is logged and left for later."""
    from bot.delivery import claim_outbox, send_claimed  # both request drains
    from bot.processing import apply_pending, schedule_retries

    try:
        services.redis.delete(WAITING_KEY)  # from now on, new work enqueues another drain
    except (RedisError, OSError) as exc:
        log.warning("drain: Redis unavailable (%s)", exc)
    now = utcnow()
    try:
        with services.db.transaction() as session:
            applied = apply_pending(session, services, limit=EVENT_BATCH, now=now)
            timers = _schedule_changed_timers(session, services, limit=TIMER_BATCH, now=now)
            rows = claim_outbox(session, owner=owner, limit=OUTBOX_BATCH, now=now)
    except Exception:  # the database is down: the sweeper asks again later
        log.exception("drain: the transaction failed; its work stays for a later drain")
        return Drained()
    schedule_retries(services, applied, now)
    try:
        send_claimed(services, rows)
    except Exception:  # the rows stay claimed by this job: the sweeper frees them
        log.exception("drain: sending failed")
    done = Drained(events=applied.taken, timers=timers, outbox=len(rows))
    done.more = (done.events >= EVENT_BATCH or done.timers >= TIMER_BATCH
                 or done.outbox >= OUTBOX_BATCH)
    if done.more and request_more:
        request_drain(services)
    return done


_STALE_TIMERS = or_(
    Task.scheduled_generation.is_(None), Task.scheduled_generation != Task.timer_generation
)


def has_work(services: Services) -> bool:
    """Whether the database holds work that no job holds."""
    with services.db.transaction(readonly=True) as session:
        return (has_free(session, InboundEvent) or has_free(session, OutboxMessage)
                or session.scalar(select(Task.id).where(_STALE_TIMERS).limit(1)) is not None)


def _schedule_changed_timers(session: Session, services: Services, *, limit: int,
                             now: datetime) -> int:
    """Schedules the timers of tasks whose generation moved on; returns how many tasks.
    Without Redis the claim is rolled back (a savepoint) and a later drain tries again."""
    from bot.timers import schedule_timers, settle_pauses  # timers import dispatch

    ids = list(session.scalars(select(Task.id).where(_STALE_TIMERS).order_by(Task.id)
                               .limit(limit)))
    if not ids:
        return 0
    try:
        with session.begin_nested():
            claimed = session.scalars(  # another drain may have taken some meanwhile
                update(Task).where(Task.id.in_(ids), _STALE_TIMERS)
                .values(scheduled_generation=Task.timer_generation)
                .returning(Task.id)
                .execution_options(synchronize_session=False)
            ).all()
            tasks = list(session.scalars(select(Task).where(Task.id.in_(claimed))))
            config = services.rules.current
            for task in tasks:
                settle_pauses(session, config, task)
            schedule_timers(services, tasks, now=now)
    except (RedisError, OSError) as exc:
        log.warning("drain: timers not scheduled, Redis unavailable (%s)", exc)
        return 0
    return len(claimed)


def _local_owner() -> str:
    return make_job_id("local", uuid.uuid4().hex)

"""Drains: workers turn what the database says is still to do into work, in batches.

Every writer (the webhooks, agent commands, jobs, the CLI) calls `request_drain` after its
commit: one Redis SET NX and, when no drain is already waiting in the queue, the enqueue of
one `drain_job`. A drain applies a batch of pending inbound events, schedules the timers of
the tasks that changed, then claims a batch of outbox rows and delivers them; while work
remains it asks for another drain, so that drains interleave with the other jobs and every
worker takes a share. Nothing depends on Redis keeping anything: the sweeper asks for a
drain whenever the database holds free work, and frees the rows of a job that is gone.

Why batches: one RQ job costs a worker ~4 ms (about 20 Redis round trips), so a job per
message and per notification capped a worker at a few dozen messages per second.
"""

import contextlib
import logging
import uuid
from dataclasses import dataclass

from redis.exceptions import RedisError
from rq import get_current_job
from sqlalchemy import or_, select, update

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
    drain when a batch was full. Never raises: a failed step is logged and left for later."""
    from bot.delivery import deliver_pending  # delivery and processing request drains
    from bot.processing import process_pending

    try:
        services.redis.delete(WAITING_KEY)  # from now on, new work enqueues another drain
    except (RedisError, OSError) as exc:
        log.warning("drain: Redis unavailable (%s)", exc)
    done = Drained()
    steps = (
        ("events", lambda: process_pending(services, limit=EVENT_BATCH), EVENT_BATCH),
        ("timers", lambda: schedule_changed_timers(services, limit=TIMER_BATCH), TIMER_BATCH),
        ("outbox", lambda: deliver_pending(services, owner=owner, limit=OUTBOX_BATCH),
         OUTBOX_BATCH),
    )
    for name, step, batch in steps:
        try:
            count = step()
        except Exception:  # the database or Redis is down: the sweeper asks again later
            log.exception("drain: the %s step failed; it will run again", name)
            continue
        setattr(done, name, count)
        done.more = done.more or count >= batch
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


def schedule_changed_timers(services: Services, *, limit: int) -> int:
    """Schedules the timers of tasks whose generation moved on; returns how many tasks."""
    from bot.timers import schedule_timers, settle_pauses  # timers import dispatch

    with services.db.transaction(readonly=True) as session:  # mostly nothing to do: no lock
        if session.scalar(select(Task.id).where(_STALE_TIMERS).limit(1)) is None:
            return 0
    with services.db.transaction() as session:
        ids = list(session.scalars(
            select(Task.id).where(_STALE_TIMERS).order_by(Task.id).limit(limit)
        ))
        if not ids:
            return 0
        claimed = session.scalars(
            update(Task)
            .where(Task.id.in_(ids), _STALE_TIMERS)
            .values(scheduled_generation=Task.timer_generation)
            .returning(Task.id)
            .execution_options(synchronize_session=False)
        ).all()
        now, config = utcnow(), services.rules.current
        tasks = list(session.scalars(select(Task).where(Task.id.in_(claimed))))
        for task in tasks:
            settle_pauses(session, config, task)
        schedule_timers(services, tasks, now=now)
    return len(ids)


def _local_owner() -> str:
    return make_job_id("local", uuid.uuid4().hex)

"""Drains: workers turn what the database says is still to do into work, in batches.

Every writer (the webhooks, agent commands, jobs, the CLI) calls `request_drain` after its
commit: one Redis SET NX and, when no drain is already waiting in the queue, the enqueue of
one `drain_job`. A drain works step after step while there is work, for up to
DRAIN_SECONDS, then makes way for the other jobs (asking for another drain if work remains),
so that every worker takes a share. In ONE transaction a step records what the previous
step sent, applies a batch of pending inbound events, claims the tasks whose timers are to
schedule and a batch of outbox rows (the notifications it just queued among them); after the
commit it sends those rows, then schedules those timers in Redis. On SQLite, one transaction
per step means one wait for the writer lock, and the sends and Redis work of one worker
overlap the transaction of the other.
Nothing depends on Redis keeping anything: the sweeper asks for a drain whenever the
database holds free work, and frees the rows of a job that is gone.

Why batches: one RQ job costs a worker ~4 ms (about 20 Redis round trips), so a job per
message and per notification capped a worker at a few dozen messages per second.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from redis.exceptions import RedisError
from rq import get_current_job
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, lazyload

from bot.jobs import FAILURE_TTL, JOB_TIMEOUT, make_job_id
from bot.services import Services
from store.claims import has_free
from store.models import TIMERS_TO_SCHEDULE, InboundEvent, OutboxMessage, Task
from store.types import utcnow

if TYPE_CHECKING:
    from bot.delivery import Sends

log = logging.getLogger(__name__)

DRAIN = "bot.dispatch.drain_job"
WAITING_KEY = "opsbot:drain:waiting"
WAITING_TTL = 10  # seconds; a waiting drain lost with Redis blocks new requests no longer
EVENT_BATCH = 25
OUTBOX_BATCH = 50
TIMER_BATCH = 500
DRAIN_SECONDS = 1.0  # a drain job then makes way for the other jobs in the queue


@dataclass
class Drained:
    events: int = 0
    timers: int = 0
    outbox: int = 0
    more: bool = False  # the last batch was full: work remains

    def __str__(self) -> str:
        return (f"{self.events} event(s), {self.timers} task(s) with new timers, "
                f"{self.outbox} outbox row(s)")

    @property
    def worked(self) -> bool:
        return bool(self.events or self.timers or self.outbox)

    def add(self, step: Drained) -> None:
        self.events += step.events
        self.timers += step.timers
        self.outbox += step.outbox
        self.more = step.more


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
    """RQ entry point: batches of work for up to DRAIN_SECONDS (see `run_drain`)."""
    from bot.runtime import current_services

    job = get_current_job()
    owner = job.id if job else _local_owner()
    return str(run_drain(current_services(), owner=owner, seconds=DRAIN_SECONDS))


def drain(services: Services) -> Drained:
    """Works in this process until nothing is left (tests, `--burst` style callers)."""
    return run_drain(services, owner=_local_owner(), seconds=None)


def run_drain(services: Services, *, owner: str, seconds: float | None) -> Drained:
    """Works batch after batch, claimed for `owner` (a job id), while there is work and for
    at most `seconds` (None: no limit); asks for another drain when the last batch was full.
    Never raises: what fails is logged and left for later."""
    from bot.delivery import Sends, finish_sends

    deadline = None if seconds is None else time.monotonic() + seconds
    total, sends = Drained(), Sends()
    while True:
        step, sends = _step(services, owner=owner, sends=sends)
        total.add(step)
        if not step.worked or (deadline is not None and time.monotonic() >= deadline):
            break
    try:
        finish_sends(services, sends)
    except Exception:  # the rows stay claimed by this job: the sweeper frees them
        log.exception("drain: cannot record %s send(s)", len(sends.sent) + len(sends.failed))
    if total.more and seconds is not None:
        request_drain(services)
    return total


def _step(services: Services, *, owner: str, sends: Sends) -> tuple[Drained, Sends]:
    """In ONE transaction: records the previous step's `sends`, applies a batch of events,
    claims the tasks whose timers are to schedule and a batch of outbox rows; after the
    commit, sends those rows, then schedules those timers in Redis. Returns what it did and
    the sends still to record."""
    from bot.delivery import Sends, claim_outbox, enqueue_failed, record_sends, send_claimed
    from bot.processing import apply_pending, schedule_retries

    try:
        services.redis.delete(WAITING_KEY)  # from now on, new work enqueues another drain
    except (RedisError, OSError) as exc:
        log.warning("drain: Redis unavailable (%s)", exc)
    now = utcnow()
    try:
        with services.db.transaction() as session:
            record_sends(session, sends, now=now)
            applied = apply_pending(session, services, limit=EVENT_BATCH, now=now)
            timers = _claim_changed_timers(session, services, limit=TIMER_BATCH)
            rows = claim_outbox(session, owner=owner, limit=OUTBOX_BATCH, now=now)
    except Exception:  # the database is down: the sweeper asks again later
        log.exception("drain: the transaction failed; its work stays for a later drain")
        return Drained(), sends
    enqueue_failed(services, sends)
    schedule_retries(services, applied, now)
    try:
        sent = send_claimed(services, rows)
    except Exception:  # the rows stay claimed by this job: the sweeper frees them
        log.exception("drain: sending failed")
        sent = Sends()
    try:
        scheduled = _schedule_timers(services, timers, now=now)
    except Exception:  # the database is down too: the sweeper's look brings them back
        log.exception("drain: cannot hand back %s task(s) whose timers failed", len(timers))
        scheduled = 0
    step = Drained(events=applied.taken, timers=scheduled, outbox=len(rows))
    step.more = (step.events >= EVENT_BATCH or len(timers) >= TIMER_BATCH
                 or step.outbox >= OUTBOX_BATCH)
    return step, sent


_STALE_TIMERS = text(TIMERS_TO_SCHEDULE)  # the predicate of the tasks' partial index


def has_work(services: Services) -> bool:
    """Whether the database holds work that no job holds."""
    with services.db.transaction(readonly=True) as session:
        return (has_free(session, InboundEvent) or has_free(session, OutboxMessage)
                or session.scalar(select(Task.id).where(_STALE_TIMERS).limit(1)) is not None)


def _claim_changed_timers(session: Session, services: Services, *, limit: int) -> list[Task]:
    """Claims up to `limit` tasks whose timers are to schedule (their generation moved on)
    and settles their pauses; the step schedules them after its commit."""
    from bot.timers import settle_pauses  # timers import dispatch

    ids = list(session.scalars(select(Task.id).where(_STALE_TIMERS).order_by(Task.id)
                               .limit(limit)))
    if not ids:
        return []
    claimed = session.scalars(  # another drain may have taken some meanwhile
        update(Task).where(Task.id.in_(ids), _STALE_TIMERS)
        .values(scheduled_generation=Task.timer_generation)
        .returning(Task.id)
        .execution_options(synchronize_session=False)
    ).all()
    tasks = list(session.scalars(select(Task).where(Task.id.in_(claimed))
                                 .options(lazyload(Task.contact))))
    settle_pauses(session, services.rules.current, tasks)
    return tasks


def _schedule_timers(services: Services, tasks: list[Task], *, now: datetime) -> int:
    """Schedules the claimed tasks' timers in Redis, off the writer lock; returns how many
    tasks. Without Redis the tasks' timers are marked to schedule again, for a later drain
    (and should that fail too, the sweeper's look for lost timers brings them back)."""
    from bot.timers import schedule_timers  # timers import dispatch

    if not tasks:
        return 0
    try:
        schedule_timers(services, tasks, now=now)
        return len(tasks)
    except (RedisError, OSError) as exc:
        log.warning("drain: timers not scheduled, Redis unavailable (%s)", exc)
        with services.db.transaction() as session:
            session.execute(
                update(Task).where(Task.id.in_([task.id for task in tasks]))
                .values(scheduled_generation=None)
                .execution_options(synchronize_session=False)
            )
        return 0


def _local_owner() -> str:
    return make_job_id("local", uuid.uuid4().hex)

"""Drains: workers turn what the database says is still to do into work, in batches.

Every writer (the webhooks, agent commands, jobs, the CLI) calls `request_drain` after its
commit: one Redis SET NX and, when no drain is already waiting in the queue, the enqueue of
one drain job (`bot.worker.entrypoints.drain`). A drain works step after step while there is
work, for up to DRAIN_SECONDS, then makes way for the other jobs (asking for another drain
if work remains), so that every worker takes a share. After a step short of a full batch it
lets work gather for DRAIN_GATHER, holding the waiting key, before the next one, and a drain
job does so before its first step too: each step has a fixed cost (its claims, its
transaction) and each job one of its own (RQ's handling, see below), and steps taken as fast
as possible under a steady flow carried one to three events each. In ONE transaction a step
records what the previous step sent, applies a batch of pending inbound events, fires the due
timers it claimed from Redis just before, claims the tasks whose timers are to schedule and a
batch of outbox rows (the notifications it just queued among them); after the commit it takes
the fired timers off the schedule, sends those rows, then schedules those timers in Redis. On
SQLite, one transaction per step means one wait for the writer lock, and the sends and Redis
work of one worker overlap the transaction of the other.
Nothing depends on Redis keeping anything: the sweeper asks for a drain whenever the
database holds free work, and frees the rows of a job that is gone.

Why batches: one RQ job costs a worker 4-7 ms of CPU (about 20 Redis round trips; see
`bench/floor_bench.py`), so a job per message and per notification capped a worker at a few
dozen messages per second.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime

from redis.exceptions import RedisError
from rq import get_current_job
from sqlalchemy.orm import Session

from bot.core import tunables
from bot.core.jobs import DELIVER_WEBHOOKS, DRAIN, Jobs, make_job_id
from bot.core.services import Services
from bot.usecases.delivery import Sends, posted_cards, record_sends, send_claimed
from bot.usecases.escalation import fire_timer, settle_pauses
from bot.usecases.messages import apply_pending
from bot.usecases.webhooks_out import deliver_due, free_lost_claims, has_due
from bot.worker.cpu import stage
from bot.worker.retries import enqueue_deliveries, outlets_of, schedule_event_retries
from bot.worker.timers import DueTimer, claim_due_timers, schedule_timers, settle_timers
from store.claims import claim_outbox, has_free_work
from store.models import Task
from store.timers import claim_tasks_to_schedule, unmark_scheduled
from store.types import utcnow

log = logging.getLogger(__name__)

WAITING_KEY = "opsbot:drain:waiting"
WEBHOOKS_WAITING_KEY = "opsbot:webhooks:waiting"


@dataclass
class Drained:
    events: int = 0
    fired: int = 0  # due timers
    timers: int = 0  # tasks whose timers were scheduled
    outbox: int = 0
    more: bool = False  # the last batch was full: work remains

    def __str__(self) -> str:
        return (f"{self.events} event(s), {self.fired} timer(s) fired, {self.timers} task(s) "
                f"with new timers, {self.outbox} outbox row(s)")

    @property
    def worked(self) -> bool:
        return bool(self.events or self.fired or self.timers or self.outbox)

    def add(self, step: Drained) -> None:
        self.events += step.events
        self.fired += step.fired
        self.timers += step.timers
        self.outbox += step.outbox
        self.more = step.more


def request_drain(services: Services) -> None:
    """Makes sure a drain runs soon. Never raises: on Redis trouble it logs, and the sweeper
    asks again."""
    ask_for_drain(services.jobs)


def ask_for_drain(jobs: Jobs) -> None:
    """`request_drain` where there are no services (RQ's scheduler process)."""
    try:
        if jobs.redis.set(WAITING_KEY, 1, nx=True, ex=tunables.WAITING_TTL):
            jobs.enqueue_new(DRAIN, job_id=make_job_id("drain", uuid.uuid4().hex))
    except (RedisError, OSError) as exc:
        log.warning("drain request: Redis unavailable (%s); the sweeper will ask again", exc)
        with contextlib.suppress(RedisError, OSError):  # else the key expires on its own
            jobs.redis.delete(WAITING_KEY)


def drain(services: Services) -> Drained:
    """Works in this process until nothing is left (tests, `--burst` style callers)."""
    return run_drain(services, owner=_local_owner(), seconds=None)


def drain_for_job(services: Services) -> Drained:
    """What a drain job does: lets work gather for DRAIN_GATHER first (the requests made
    meanwhile find the waiting key held and enqueue no other drain), then batches of work for
    up to DRAIN_SECONDS, claimed for the job."""
    job = get_current_job()
    owner = job.id if job else _local_owner()
    time.sleep(tunables.DRAIN_GATHER)  # the request's waiting key is held until the first step
    return run_drain(services, owner=owner, seconds=tunables.DRAIN_SECONDS)


def run_drain(services: Services, *, owner: str, seconds: float | None) -> Drained:
    """Works batch after batch, claimed for `owner` (a job id), while there is work and for
    at most `seconds` (None: no limit); asks for another drain when the last batch was full.
    Never raises: what fails is logged and left for later."""
    deadline = None if seconds is None else time.monotonic() + seconds
    total, sends = Drained(), Sends()
    while True:
        step, sends = _step(services, owner=owner, sends=sends)
        total.add(step)
        if not step.worked or (deadline is not None and time.monotonic() >= deadline):
            break
        if deadline is not None and not step.more and not _gather(services):
            break  # another drain is already asked for: it takes what comes next
    try:
        _finish_sends(services, sends)
    except Exception:  # the rows stay claimed by this job: the sweeper frees them
        log.exception("drain: cannot record %s send(s)", len(sends.sent) + len(sends.failed))
    if total.more and seconds is not None:
        request_drain(services)
    request_webhook_delivery(services)  # the changes it applied may have queued some
    return total


def _gather(services: Services) -> bool:
    """Lets work gather for DRAIN_GATHER before the next step, holding the waiting key (the
    next step deletes it); False when a request came first (a drain job is queued)."""
    try:
        if not services.redis.set(WAITING_KEY, 1, nx=True, ex=tunables.WAITING_TTL):
            return False
    except (RedisError, OSError) as exc:
        log.warning("drain: Redis unavailable (%s)", exc)
    time.sleep(tunables.DRAIN_GATHER)
    return True


def _step(services: Services, *, owner: str, sends: Sends) -> tuple[Drained, Sends]:
    """In ONE transaction: records the previous step's `sends`, applies a batch of events,
    claims the tasks whose timers are to schedule and a batch of outbox rows; after the
    commit, sends those rows, then schedules those timers in Redis. Returns what it did and
    the sends still to record."""
    try:
        services.redis.delete(WAITING_KEY)  # from now on, new work enqueues another drain
    except (RedisError, OSError) as exc:
        log.warning("drain: Redis unavailable (%s)", exc)
    now, config = utcnow(), services.rules.current
    due = _claim_due_timers(services, now=now)
    try:
        with stage("processing"), services.db.transaction() as session:
            failed = record_sends(session, sends, now=now)
            applied = apply_pending(session, config=config, limit=tunables.EVENT_BATCH, now=now)
            with stage("timers"):
                fired, raised = _fire(session, services, due, now=now)
            timers = claim_tasks_to_schedule(session, limit=tunables.TIMER_BATCH)
            settle_pauses(session, config, timers)
            rows = claim_outbox(session, owner=owner, limit=tunables.OUTBOX_BATCH, now=now)
            posted = posted_cards(session, rows)
    except Exception:  # the database is down: the sweeper asks again later
        log.exception("drain: the transaction failed; its work stays for a later drain")
        return Drained(), sends
    enqueue_deliveries(services.jobs, failed)
    schedule_event_retries(services.jobs, applied.retries, now)
    _settle_timers(services, fired, raised)
    try:
        with stage("delivery"):
            sent = send_claimed(services.db, outlets_of(services), rows, posted)
    except Exception:  # the rows stay claimed by this job: the sweeper frees them
        log.exception("drain: sending failed")
        sent = Sends()
    try:
        with stage("timers"):
            scheduled = _schedule_timers(services, timers, now=now)
    except Exception:  # the database is down too: the sweeper's look brings them back
        log.exception("drain: cannot hand back %s task(s) whose timers failed", len(timers))
        scheduled = 0
    step = Drained(events=applied.taken, fired=len(fired), timers=scheduled, outbox=len(rows))
    step.more = (step.events >= tunables.EVENT_BATCH or len(due) >= tunables.DUE_TIMER_BATCH
                 or len(timers) >= tunables.TIMER_BATCH or step.outbox >= tunables.OUTBOX_BATCH)
    return step, sent


def _claim_due_timers(services: Services, *, now: datetime) -> list[DueTimer]:
    try:
        with stage("timers"):
            return claim_due_timers(services.jobs, now=now, limit=tunables.DUE_TIMER_BATCH)
    except (RedisError, OSError) as exc:
        log.warning("drain: due timers not claimed, Redis unavailable (%s)", exc)
        return []


def _fire(session: Session, services: Services, due: list[DueTimer], *,
          now: datetime) -> tuple[list[str], dict[DueTimer, str]]:
    """Fires each claimed timer in a savepoint of the step's transaction; returns the ids of
    those fired, and the traceback of each that raised (`settle_timers` retries it)."""
    fired, failed = [], {}
    for timer in due:
        savepoint = session.begin_nested()
        try:
            outcome = fire_timer(session, config=services.rules.current, task_id=timer.task_id,
                                 kind=timer.kind, generation=timer.generation,
                                 at_iso=timer.at_iso, now=now)
        except Exception:
            savepoint.rollback()
            log.exception("drain: timer %s failed", timer.job_id)
            failed[timer] = traceback.format_exc()
            continue
        savepoint.commit()
        log.debug("timer %s: %s", timer.job_id, outcome)
        fired.append(timer.job_id)
    return fired, failed


def _settle_timers(services: Services, fired: list[str], failed: dict[DueTimer, str]) -> None:
    try:
        with stage("timers"):
            settle_timers(services.jobs, fired, failed)
    except (RedisError, OSError) as exc:  # they fire again after their lease, and do nothing
        log.warning("drain: fired timers not taken off the schedule, Redis unavailable (%s)",
                    exc)


def _finish_sends(services: Services, sends: Sends) -> None:
    """Records `sends` in a transaction of its own, then enqueues the failed rows' jobs."""
    if not sends:
        return
    with stage("delivery"), services.db.transaction() as session:
        failed = record_sends(session, sends, now=utcnow())
    enqueue_deliveries(services.jobs, failed)


def has_work(services: Services) -> bool:
    """Whether the database holds work that no job holds."""
    with services.db.transaction(readonly=True) as session:
        return has_free_work(session)


def _schedule_timers(services: Services, tasks: list[Task], *, now: datetime) -> int:
    """Schedules the claimed tasks' timers in Redis, off the writer lock; returns how many
    tasks. Without Redis the tasks' timers are marked to schedule again, for a later drain
    (and should that fail too, the sweeper's look for lost timers brings them back)."""
    if not tasks:
        return 0
    try:
        schedule_timers(services.jobs, services.rules.current, tasks, now=now)
        return len(tasks)
    except (RedisError, OSError) as exc:
        log.warning("drain: timers not scheduled, Redis unavailable (%s)", exc)
        with services.db.transaction() as session:
            unmark_scheduled(session, task_ids=[task.id for task in tasks])
        return 0


def request_webhook_delivery(services: Services, *, now: datetime | None = None) -> None:
    """Makes sure a webhook delivery job runs soon when a delivery is due (one indexed look,
    then as `request_drain`). Never raises: the sweeper asks again."""
    try:
        if not has_due(services.db, now=now or utcnow()):
            return
        if services.redis.set(WEBHOOKS_WAITING_KEY, 1, nx=True, ex=tunables.WAITING_TTL):
            job_id = make_job_id("webhooks", uuid.uuid4().hex)
            services.jobs.enqueue_new(DELIVER_WEBHOOKS, job_id=job_id)
    except Exception:
        log.exception("webhook delivery request failed; the sweeper will ask again")


def deliver_webhooks_for_job(services: Services) -> int:
    """What a webhook delivery job does: rounds for up to WEBHOOK_SECONDS, claimed for the
    job; asks for another job when deliveries are still due. Returns the attempts made."""
    job = get_current_job()
    with contextlib.suppress(RedisError, OSError):  # else the key expires on its own
        services.redis.delete(WEBHOOKS_WAITING_KEY)  # from now on, new work asks again
    attempts = deliver_due(services.db, owner=job.id if job else _local_owner(),
                           seconds=tunables.WEBHOOK_SECONDS)
    request_webhook_delivery(services)
    return attempts


def redrive_webhooks(services: Services, *, now: datetime) -> list[int]:
    """The sweeper's part: frees the deliveries of a job that is gone, and asks for a
    delivery job when some are due (their retry time has come). Returns the freed ids."""
    try:
        freed = free_lost_claims(services.db, job_exists=services.jobs.exists, now=now)
    except Exception:
        log.exception("sweep: cannot free the deliveries of lost webhook jobs")
        freed = []
    request_webhook_delivery(services, now=now)
    return freed


def _local_owner() -> str:
    return make_job_id("local", uuid.uuid4().hex)

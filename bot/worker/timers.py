"""Timers in Redis: each task's SLA timers in one schedule, and each agent's daily digest as an
RQ scheduled job.

Drains (`bot.worker.drains`) call `schedule_timers` for the tasks whose `timer_generation`
moved on (every `transition_task` bumps it). A timer is an id, `timer-<task>-<kind>-<generation>`
(`timer_job_id`), in two places:

- the schedule, a sorted set per queue (`DUE_KEY`) whose score is the timer's exact instant;
- its task's registry, a hash (`REGISTRY_KEY`) from the id to the instant (ISO 8601). A timer
  stays there once fired, until a later plan drops it, so a look for lost timers
  (`restore_missing_timers`) tells a timer that fired from one Redis lost.

Firing: the scheduler's tick asks for a drain when a timer is due (`has_due_timers`); the
drain claims a batch (`claim_due_timers`), fires them in its transaction
(`bot.usecases.escalation.fire_timer` re-reads each task) and, after the commit, takes them
off the schedule (`settle_timers`). One that raised is tried again after RETRY's waits (the
retries made are counted in `RETRIES_KEY`); once those are spent it joins the failed jobs as a
`fire_timer` job. Why not an RQ job per timer: a job hash cost ~0.1 ms of a worker's CPU to
write and ~0.8 KB of Redis, and one RQ job run per timer cost ~4 ms and a transaction.
"""

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from redis.client import Pipeline
from rq import Queue
from rq.job import Job

from bot.core import tunables
from bot.core.jobs import FIRE_TIMER, RETRY, SEND_DIGEST, Jobs, digest_job_id, timer_job_id
from bot.usecases.digest import next_shift_start
from bot.usecases.escalation import sla_clock
from rules import RulesConfig, plan_timers
from store.models import Task

DUE_KEY = "opsbot:timers:due:{}"  # the queue's name
REGISTRY_KEY = "opsbot:timers:{}"  # the task's id
RETRIES_KEY = "opsbot:timers:retries:{}"  # the queue's name
ADOPTED_KEY = "opsbot:timers:adopted"  # set once the previous version's timers were moved
LEGACY_QUEUE = "{}-timers"  # the queue's name: where each timer was an RQ scheduled job

# Up to ARGV[2] ids due at ARGV[1], each moved to ARGV[3] (the end of its lease) at once.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return due
"""


@dataclass(frozen=True)
class DueTimer:
    """A timer claimed to fire: its id and what `fire_timer` is called with."""

    job_id: str
    task_id: int
    kind: str
    generation: int
    at_iso: str

    @property
    def args(self) -> tuple[int, str, int, str]:
        return self.task_id, self.kind, self.generation, self.at_iso


def due_key(jobs: Jobs) -> str:
    """The schedule of `jobs`' queue."""
    return DUE_KEY.format(jobs.queue.name)


def has_due_timers(jobs: Jobs, *, now: datetime) -> bool:
    """Whether a timer is due and not claimed (one round trip)."""
    return bool(jobs.redis.zrangebyscore(due_key(jobs), "-inf", now.timestamp(), start=0,
                                         num=1))


def claim_due_timers(jobs: Jobs, *, now: datetime, limit: int) -> list[DueTimer]:
    """Up to `limit` timers due at `now`, claimed for TIMER_LEASE: their score moves to the
    lease's end, so no other drain takes them, and timers a drain could not fire (it died, the
    database failed) fire once the lease is over. A script, then one read of their instants
    in their tasks' registries."""
    schedule = due_key(jobs)
    claim = jobs.redis.register_script(_CLAIM)
    lease_end = now.timestamp() + tunables.TIMER_LEASE
    ids = [raw.decode() for raw in claim(keys=[schedule], args=[now.timestamp(), limit,
                                                                lease_end])]
    if not ids:
        return []
    with jobs.redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(REGISTRY_KEY.format(_task_id(job_id)), job_id)
        instants = pipe.execute()
    gone = [job_id for job_id, at in zip(ids, instants, strict=True) if at is None]
    if gone:  # cancelled as it came due: nothing to fire
        jobs.redis.zrem(schedule, *gone)
    return [_due(job_id, at.decode()) for job_id, at in zip(ids, instants, strict=True) if at]


def settle_timers(jobs: Jobs, fired: Sequence[str], failed: Mapping[DueTimer, str]) -> None:
    """After the step's commit, one pipeline: the `fired` timers leave the schedule (their
    registry keeps them). A timer whose firing raised (`failed`: timer → traceback) waits
    RETRY's next wait; once those are spent it joins the failed jobs of `jobs`' queue
    (`opsbot jobs failed`, the console) as a `fire_timer` job, which a requeue runs."""
    if not fired and not failed:
        return
    schedule, retries = due_key(jobs), RETRIES_KEY.format(jobs.queue.name)
    raised = [timer.job_id for timer in failed]
    made = [int(n or 0) for n in jobs.redis.hmget(retries, raised)] if raised else []
    now = time.time()
    with jobs.redis.pipeline() as pipe:
        if fired:
            pipe.zrem(schedule, *fired)
            pipe.hdel(retries, *fired)
        for (timer, error), before in zip(failed.items(), made, strict=True):
            if before < RETRY.retries:
                wait = RETRY.wait_before(before + 1).total_seconds()
                pipe.zadd(schedule, {timer.job_id: now + wait})
                pipe.hset(retries, timer.job_id, before + 1)
            else:
                jobs.add_failed(FIRE_TIMER, *timer.args, job_id=timer.job_id, error=error,
                                pipeline=pipe)
                pipe.zrem(schedule, timer.job_id)
                pipe.hdel(retries, timer.job_id)
        pipe.execute()


def schedule_timers(jobs: Jobs, config: RulesConfig, tasks: list[Task], *,
                    now: datetime) -> dict[int, list[str]]:
    """Schedules the timers of each task's current generation (an id already registered,
    pending or fired, is kept as is) and cancels the task's registered timers of that
    generation or an earlier one that the plan no longer has, in two Redis round trips for the
    batch: the registries, then one transaction. A later generation's timers are never
    touched, so two drains scheduling one task's generations in either order leave the later
    one in place (the earlier one's timers fire and do nothing). Returns each task's timer
    ids now scheduled."""
    plans = {task.id: _planned(task, config, now=now) for task in tasks}
    generations = {task.id: task.timer_generation for task in tasks}
    registered = _registered(jobs, plans)
    with jobs.redis.pipeline() as pipe:
        cancelled = []
        for task_id, plan in plans.items():
            known = registered[task_id]
            cancel = sorted(job_id for job_id in known
                            if job_id not in plan and _generation(job_id) <= generations[task_id])
            if cancel:
                pipe.hdel(REGISTRY_KEY.format(task_id), *cancel)
                cancelled += cancel
            add_timers(pipe, jobs, task_id, {i: at for i, at in plan.items() if i not in known})
        if cancelled:
            pipe.zrem(due_key(jobs), *cancelled)
            pipe.hdel(RETRIES_KEY.format(jobs.queue.name), *cancelled)
        pipe.execute()
    return {task_id: list(plan) for task_id, plan in plans.items()}


def restore_missing_timers(jobs: Jobs, config: RulesConfig, tasks: list[Task], *,
                           now: datetime) -> list[str]:
    """Schedules again the current generation's timers missing from their task's registry (a
    flush, an eviction): one read of the registries, then one transaction."""
    plans = {task.id: _planned(task, config, now=now) for task in tasks}
    registered = _registered(jobs, plans)
    restored = []
    with jobs.redis.pipeline() as pipe:
        for task_id, plan in plans.items():
            missing = {job_id: at for job_id, at in plan.items()
                       if job_id not in registered[task_id]}
            add_timers(pipe, jobs, task_id, missing)
            restored += missing
        pipe.execute()
    return restored


def _registered(jobs: Jobs, task_ids: Collection[int]) -> dict[int, set[str]]:
    """Each task's registered timer ids, in one round trip."""
    with jobs.redis.pipeline(transaction=False) as pipe:
        for task_id in task_ids:
            pipe.hkeys(REGISTRY_KEY.format(task_id))
        found = pipe.execute()
    return {task_id: {member.decode() for member in members}
            for task_id, members in zip(task_ids, found, strict=True)}


def add_timers(pipe: Pipeline, jobs: Jobs, task_id: int, timers: dict[str, datetime]) -> None:
    """Adds to `pipe` the scheduling of `timers` (id → instant) of task `task_id`."""
    if timers:
        pipe.zadd(due_key(jobs), {job_id: at.timestamp() for job_id, at in timers.items()})
        pipe.hset(REGISTRY_KEY.format(task_id),
                  mapping={job_id: at.isoformat() for job_id, at in timers.items()})


def _planned(task: Task, config: RulesConfig, *, now: datetime) -> dict[str, datetime]:
    """Each planned timer's id → its instant."""
    return {timer_job_id(task.id, timer.kind, task.timer_generation): timer.at
            for timer in plan_timers(config, sla_clock(task), now=now)}


def _due(job_id: str, at_iso: str) -> DueTimer:
    """The timer of a `timer_job_id`: timer-<task>-<kind>-<generation>."""
    _prefix, task_id, rest = job_id.split("-", 2)
    kind, generation = rest.rsplit("-", 1)
    return DueTimer(job_id, int(task_id), kind, int(generation), at_iso)


def _task_id(job_id: str) -> str:
    return job_id.split("-", 2)[1]


def _generation(job_id: str) -> int:
    return int(job_id.rsplit("-", 1)[1])


def adopt_legacy_timers(jobs: Jobs) -> int:
    """Moves the timers of the previous version, where each was an RQ scheduled job on the
    `<queue>-timers` queue and each task's registry a set of ids, into the schedule and the
    registries, keeping each pending timer's score; once per Redis (ADOPTED_KEY), by the
    first worker that starts. Returns how many pending timers it moved. A registered id
    whose job has expired is left out: if the plan still has it, the look for lost timers
    schedules it again, and its notification's dedupe key keeps it from notifying twice."""
    if not jobs.redis.set(ADOPTED_KEY, 1, nx=True):
        return 0
    try:
        return _adopt(jobs)
    except Exception:
        jobs.redis.delete(ADOPTED_KEY)  # the next worker that starts tries again
        raise


def _adopt(jobs: Jobs) -> int:
    legacy = Queue(LEGACY_QUEUE.format(jobs.queue.name), connection=jobs.redis)
    schedule = legacy.scheduled_job_registry.key
    pending = {member.decode(): score
               for member, score in jobs.redis.zrange(schedule, 0, -1, withscores=True)}
    registries = list(jobs.redis.scan_iter(match=REGISTRY_KEY.format("*"), _type="set"))
    ids = set(pending)
    for key in registries:
        ids |= {member.decode() for member in jobs.redis.smembers(key)}
    found = [job for job in Job.fetch_many(sorted(ids), connection=jobs.redis) if job]
    with jobs.redis.pipeline() as pipe:
        pipe.delete(schedule, *registries, *(Job.key_for(job_id) for job_id in ids))
        for job in found:
            task_id, _kind, _generation, at_iso = job.args
            pipe.hset(REGISTRY_KEY.format(task_id), job.id, at_iso)
            if job.id in pending:
                pipe.zadd(due_key(jobs), {job.id: pending[job.id]})
        pipe.execute()
    return sum(job.id in pending for job in found)


def schedule_digests(jobs: Jobs, config: RulesConfig, *, now: datetime) -> list[str]:
    """Makes sure every agent's next shift start is scheduled (the sweeper calls this on
    every pass: one job per agent and opening, so it is scheduled once); returns the job
    ids. The job routes the waiting tasks of her teams and sends her digest once a day."""
    ids = []
    for agent in config.agents:
        at = next_shift_start(config, agent.id, now=now)
        if at is None:
            continue
        day = at.astimezone(config.tz).date().isoformat()
        job_id = digest_job_id(agent.id, at)
        if not jobs.exists(job_id):
            jobs.enqueue(SEND_DIGEST, agent.id, day, job_id=job_id, at=at)
        ids.append(job_id)
    return ids

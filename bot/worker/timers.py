"""Timers on RQ: each task's SLA timers and each agent's daily digest, as scheduled jobs.

Drains (`bot.worker.drains`) call `schedule_timers` for the tasks whose `timer_generation`
moved on (every `transition_task` bumps it). Each timer is an RQ scheduled job
(`Jobs.schedule_many`, a batch of tasks at once) under a deterministic id
`timer-<task>-<kind>-<generation>`, on the timers' own queue (`Jobs.timers`). A task's
scheduled ids are kept in a Redis set, so that a later plan can cancel the timers it no
longer has.

Firing: the scheduler's tick asks for a drain when a timer is due (`has_due_timers`); the
drain claims a batch (`claim_due_timers`), fires them in its transaction
(`bot.usecases.escalation.fire_timer` re-reads each task) and, after the commit, takes them
off the schedule (`settle_timers`); one that raised is tried again after RETRY's waits, then
joins the failed jobs. Why not one RQ job per timer: each cost a worker ~4 ms of
RQ's handling and a transaction of its own, and under load timers were a third of the jobs.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from redis.client import Pipeline
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.results import Result
from rq.utils import now as now_utc
from rq.utils import utcformat

from bot.core import tunables
from bot.core.jobs import FIRE_TIMER, SEND_DIGEST, Jobs, digest_job_id, timer_job_id
from bot.usecases.digest import next_shift_start
from bot.usecases.escalation import sla_clock
from rules import RulesConfig, Timer, plan_timers
from store.models import Task

_REGISTRY = "opsbot:timers:{}"

Call = tuple[str, tuple, datetime]  # (job_id, args, at)

# Up to ARGV[2] ids due at ARGV[1], each moved to ARGV[3] (the end of its lease) at once.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return due
"""


@dataclass(frozen=True)
class DueTimer:
    """A timer claimed to fire: its job id and the arguments it was scheduled with."""

    job_id: str
    task_id: int
    kind: str
    generation: int
    at_iso: str


def has_due_timers(jobs: Jobs, *, now: datetime) -> bool:
    """Whether a timer is due and not claimed (one round trip)."""
    registry = jobs.timers.queue.scheduled_job_registry.key
    return bool(jobs.redis.zrangebyscore(registry, "-inf", now.timestamp(), start=0, num=1))


def claim_due_timers(jobs: Jobs, *, now: datetime, limit: int) -> list[DueTimer]:
    """Up to `limit` timers due at `now`, claimed for TIMER_LEASE: their score moves to the
    lease's end, so no other drain takes them, and timers a drain could not fire (it died, the
    database failed) fire once the lease is over. A script, then one read of their jobs."""
    timers = jobs.timers
    registry = timers.queue.scheduled_job_registry.key
    lease_end = now.timestamp() + tunables.TIMER_LEASE
    claim = jobs.redis.register_script(_CLAIM)
    ids = [raw.decode() for raw in claim(keys=[registry], args=[now.timestamp(), limit, lease_end])]
    if not ids:
        return []
    found = Job.fetch_many(ids, connection=jobs.redis)
    gone = [job_id for job_id, job in zip(ids, found, strict=True) if job is None]
    if gone:  # cancelled as it came due: nothing to fire
        jobs.redis.zrem(registry, *gone)
    return [DueTimer(job.id, *job.args) for job in found if job is not None]


def settle_timers(jobs: Jobs, fired: Sequence[str], failed: Mapping[str, str]) -> None:
    """After the step's commit, one pipeline: the `fired` timers leave the schedule and their
    jobs stay, FINISHED, for RESULT_TTL, as a job RQ ran would (the sweeper's look for lost
    timers sees them). A timer whose firing raised (`failed`: id → traceback) waits RETRY's
    next wait, as RQ retried timer jobs; once those are spent it joins the failed jobs of
    `jobs`' queue (`opsbot jobs failed`, the console), from which a requeue runs it as a
    `fire_timer` job of that queue."""
    if not fired and not failed:
        return
    registry = jobs.timers.queue.scheduled_job_registry.key
    raised = [job for job in Job.fetch_many(list(failed), connection=jobs.redis) if job]
    ended = now_utc()
    with jobs.redis.pipeline() as pipe:
        if fired:
            pipe.zrem(registry, *fired)
        for job_id in fired:
            pipe.hset(Job.key_for(job_id), mapping={"status": JobStatus.FINISHED.value,
                                                    "ended_at": utcformat(ended)})
            pipe.expire(Job.key_for(job_id), tunables.RESULT_TTL)
        for job in raised:
            if job.should_retry:
                wait = job.get_retry_interval()
                job.retries_left -= 1
                pipe.hset(job.key, "retries_left", job.retries_left)
                pipe.zadd(registry, {job.id: ended.timestamp() + wait})
            else:
                _fail(jobs, job, failed[job.id], ended=ended, pipe=pipe)
                pipe.zrem(registry, job.id)
        pipe.execute()


def _fail(jobs: Jobs, job: Job, error: str, *, ended: datetime, pipe: Pipeline) -> None:
    # What RQ's worker writes for a job that failed for good, with the job's origin moved to
    # `jobs`' queue: the failed registry lists it there, and a requeue enqueues it there.
    job.origin, job.ended_at = jobs.queue.name, ended
    job.set_status(JobStatus.FAILED, pipeline=pipe)
    FailedJobRegistry(queue=jobs.queue).add(job, ttl=tunables.FAILURE_TTL, exc_string=error,
                                            pipeline=pipe)
    Result.create_failure(job, tunables.FAILURE_TTL, exc_string=error, pipeline=pipe)


def schedule_timers(jobs: Jobs, config: RulesConfig, tasks: list[Task], *,
                    now: datetime) -> dict[int, list[str]]:
    """Schedules the timers of each task's current generation (an id already alive in Redis
    is kept as is) and cancels the task's registered timers of that generation or an earlier
    one that the plan no longer has, in three Redis round trips for the batch: the registered
    ids (SMEMBERS), the jobs' statuses, then one pipeline that schedules, cancels and updates
    each task's registry. A later generation's timers are never touched, so two drains
    scheduling one task's generations in either order leave the later one in place (the
    earlier one's timers fire and do nothing). Returns each task's job ids now scheduled."""
    jobs = jobs.timers
    plans = {task.id: _planned(task, plan_timers(config, sla_clock(task), now=now))
             for task in tasks}
    generations = {task.id: task.timer_generation for task in tasks}
    cancel = _replaced_timers(jobs, plans, generations)
    with jobs.redis.pipeline() as pipe:
        calls = [call for plan in plans.values() for call in plan.values()]
        schedule_exactly(jobs, calls, [i for ids in cancel.values() for i in ids], pipe)
        for task_id, plan in plans.items():
            if cancel[task_id]:
                pipe.srem(_REGISTRY.format(task_id), *cancel[task_id])
            if plan:
                pipe.sadd(_REGISTRY.format(task_id), *plan)
        pipe.execute()
    return {task_id: list(plan) for task_id, plan in plans.items()}


def _replaced_timers(jobs: Jobs, plans: dict[int, dict],
                     generations: dict[int, int]) -> dict[int, list[str]]:
    """Each task's registered job ids, of its generation or an earlier one, that its plan no
    longer has."""
    with jobs.redis.pipeline(transaction=False) as pipe:
        for task_id in plans:
            pipe.smembers(_REGISTRY.format(task_id))
        registered = pipe.execute()
    return {
        task_id: [job_id for job_id in sorted(member.decode() for member in members)
                  if job_id not in plan and _generation(job_id) <= generations[task_id]]
        for (task_id, plan), members in zip(plans.items(), registered, strict=True)
    }


def _generation(job_id: str) -> int:
    """The generation in a `timer_job_id`."""
    return int(job_id.rsplit("-", 1)[1])


def restore_missing_timers(jobs: Jobs, config: RulesConfig, tasks: list[Task], *,
                           now: datetime) -> list[str]:
    """Re-enqueues the current generation's timers whose job is gone from Redis (a flush).

    One pipelined EXISTS per planned timer, then one pipeline that schedules the missing ones
    (a job that came back meanwhile is kept) and adds them to their task's registry.
    """
    jobs = jobs.timers
    plans = {task.id: _planned(task, plan_timers(config, sla_clock(task), now=now))
             for task in tasks}
    planned = [(task_id, call) for task_id, plan in plans.items() for call in plan.values()]
    with jobs.redis.pipeline(transaction=False) as pipe:
        for _task_id, (job_id, _args, _at) in planned:
            pipe.exists(Job.key_for(job_id))
        present = pipe.execute()
    missing = [entry for entry, found in zip(planned, present, strict=True) if not found]
    with jobs.redis.pipeline() as pipe:
        schedule_exactly(jobs, [call for _task_id, call in missing], [], pipe)
        for task_id, (job_id, _args, _at) in missing:
            pipe.sadd(_REGISTRY.format(task_id), job_id)
        pipe.execute()
    return [job_id for _task_id, (job_id, _args, _at) in missing]


def _planned(task: Task, timers: list[Timer]) -> dict[str, Call]:
    """Each timer's job id -> the (job_id, args, at) call that schedules it."""
    calls = {}
    for timer in timers:
        job_id = timer_job_id(task.id, timer.kind, task.timer_generation)
        args = (task.id, timer.kind, task.timer_generation, timer.at.isoformat())
        calls[job_id] = (job_id, args, timer.at)
    return calls


def schedule_exactly(jobs: Jobs, calls: list[Call], cancel: list[str], pipe: Pipeline) -> None:
    """Schedules `calls` on `jobs` (the timers' queue) at their exact instants and cancels
    `cancel`, in `pipe`."""
    jobs.schedule_many(FIRE_TIMER, calls, cancel=cancel, pipeline=pipe)
    if calls:
        # RQ truncates the schedule score to whole seconds (a timer could fire up to 1 s
        # early); keep the exact instant, which claims compare with the exact time. XX: a
        # kept job that already left the schedule is not put back.
        registry = jobs.queue.scheduled_job_registry.key
        pipe.zadd(registry, {job_id: at.timestamp() for job_id, _args, at in calls}, xx=True)


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

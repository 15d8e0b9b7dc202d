"""Timers on RQ: each task's SLA timers and each agent's daily digest, as scheduled jobs.

Drains (`bot.worker.drains`) call `schedule_timers` for the tasks whose `timer_generation`
moved on (every `transition_task` bumps it). Each timer is an RQ scheduled job
(`Jobs.schedule_many`, a batch of tasks at once) under a deterministic id
`timer-<task>-<kind>-<generation>`; when it fires, `bot.usecases.escalation.fire_timer`
re-reads the task. A task's scheduled ids are kept in a Redis set, so that a later plan can
cancel the timers it no longer has.
"""

from datetime import datetime

from redis.client import Pipeline
from rq.job import Job

from bot.core.jobs import FIRE_TIMER, SEND_DIGEST, Jobs, digest_job_id, timer_job_id
from bot.usecases.digest import next_shift_start
from bot.usecases.escalation import sla_clock
from rules import RulesConfig, Timer, plan_timers
from store.models import Task

_REGISTRY = "opsbot:timers:{}"

Call = tuple[str, tuple, datetime]  # (job_id, args, at)


def schedule_timers(jobs: Jobs, config: RulesConfig, tasks: list[Task], *,
                    now: datetime) -> dict[int, list[str]]:
    """Schedules the timers of each task's current generation (an id already alive in Redis
    is kept as is) and cancels the task's registered timers of that generation or an earlier
    one that the plan no longer has, in three Redis round trips for the batch: the registered
    ids (SMEMBERS), the jobs' statuses, then one pipeline that schedules, cancels and updates
    each task's registry. A later generation's timers are never touched, so two drains
    scheduling one task's generations in either order leave the later one in place (the
    earlier one's timers fire and do nothing). Returns each task's job ids now scheduled."""
    plans = {task.id: _planned(task, plan_timers(config, sla_clock(task), now=now))
             for task in tasks}
    generations = {task.id: task.timer_generation for task in tasks}
    cancel = _replaced_timers(jobs, plans, generations)
    with jobs.redis.pipeline() as pipe:
        calls = [call for plan in plans.values() for call in plan.values()]
        _schedule(jobs, calls, [i for ids in cancel.values() for i in ids], pipe)
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
    plans = {task.id: _planned(task, plan_timers(config, sla_clock(task), now=now))
             for task in tasks}
    planned = [(task_id, call) for task_id, plan in plans.items() for call in plan.values()]
    with jobs.redis.pipeline(transaction=False) as pipe:
        for _task_id, (job_id, _args, _at) in planned:
            pipe.exists(Job.key_for(job_id))
        present = pipe.execute()
    missing = [entry for entry, found in zip(planned, present, strict=True) if not found]
    with jobs.redis.pipeline() as pipe:
        _schedule(jobs, [call for _task_id, call in missing], [], pipe)
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


def _schedule(jobs: Jobs, calls: list[Call], cancel: list[str], pipe: Pipeline) -> None:
    jobs.schedule_many(FIRE_TIMER, calls, cancel=cancel, pipeline=pipe)
    if calls:
        # RQ truncates the schedule score to whole seconds (a timer could fire up to 1 s
        # early); keep the exact instant: our scheduler (bot.worker.process) compares it
        # with the exact time. XX: a kept job that already left the schedule is not put back.
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

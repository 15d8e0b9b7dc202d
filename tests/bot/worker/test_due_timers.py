"""Due SLA timers fire in drains: the scheduler's tick asks for a drain, the step claims a
batch, fires it in its transaction and takes it off the schedule after the commit; a timer
whose firing raises is retried, then joins the failed jobs; one claimed by a drain that died
fires once its lease is over."""

import time

import pytest
from sqlalchemy import func, select

from bot.core import tunables
from bot.core.jobs import RETRY, list_failed_jobs, requeue_failed_job, timer_job_id
from bot.worker import drains
from bot.worker.drains import drain
from bot.worker.process import DrainingScheduler
from bot.worker.sweeper import sweep
from bot.worker.timers import (
    REGISTRY_KEY,
    RETRIES_KEY,
    claim_due_timers,
    due_key,
    has_due_timers,
)
from store.events import Audit
from store.models import TaskEvent
from store.types import utcnow
from tests.bot.workers_support import make_services, new_task, task_of, write_rules

REMINDERS = ("remind-first_response-50", "remind-first_response-75")


@pytest.fixture
def services(database_url, redis_url, tmp_path, slack):
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    yield services
    services.close()


def scheduled_task(services) -> int:
    """A task an hour from its deadlines, with its timers scheduled by a drain."""
    task_id = new_task(services, sla="long")
    drain(services)
    return task_id


def come_due(services, task_id: int, kinds=REMINDERS) -> list[str]:
    """Moves these timers of the task to a second ago in the schedule; returns their ids."""
    generation = task_of(services, task_id).timer_generation
    ids = [timer_job_id(task_id, kind, generation) for kind in kinds]
    schedule = due_key(services.jobs)
    assert services.redis.zadd(schedule, dict.fromkeys(ids, time.time() - 1), xx=True, ch=True)
    return ids


def reminders(services) -> int:
    with services.db.transaction() as session:
        return session.scalar(select(func.count()).where(TaskEvent.action == Audit.REMINDER))


def test_a_due_timer_fires_in_a_step_that_also_sends_what_it_queued(services, slack):
    task_id = scheduled_task(services)
    assert not has_due_timers(services.jobs, now=utcnow())
    [job_id] = come_due(services, task_id, kinds=REMINDERS[:1])
    assert has_due_timers(services.jobs, now=utcnow())

    step = drain(services)

    assert (step.fired, step.outbox) == (1, 1)  # the reminder's card went in the same step
    assert reminders(services) == 1
    assert any("Reminder" in str(call.params.get("text", ""))
               for call in slack.calls("chat.postMessage"))
    assert services.redis.zscore(due_key(services.jobs), job_id) is None
    assert services.redis.hexists(REGISTRY_KEY.format(task_id), job_id)  # fired, not lost
    assert not has_due_timers(services.jobs, now=utcnow())
    assert drain(services).fired == 0


@pytest.fixture
def first_fails(monkeypatch):
    """The first timer fired raises; returns the kinds of the timers fired so far."""
    real, calls = drains.fire_timer, []

    def fails_first(session, **timer):
        calls.append(timer["kind"])
        if len(calls) == 1:
            raise RuntimeError("the first timer breaks")
        return real(session, **timer)

    monkeypatch.setattr(drains, "fire_timer", fails_first)
    return calls


def test_a_timer_that_raises_fires_again_after_the_retry_wait(services, first_fails):
    task_id = scheduled_task(services)
    ids = come_due(services, task_id)

    assert drain(services).fired == 1  # the other one of the batch fired all the same
    assert reminders(services) == 1
    assert not has_due_timers(services.jobs, now=utcnow())  # the failed one waits RETRY's wait
    schedule = due_key(services.jobs)
    [failed] = [job_id for job_id in ids if services.redis.zscore(schedule, job_id)]
    assert services.redis.hget(RETRIES_KEY.format(services.jobs.queue.name), failed) == b"1"
    wait = services.redis.zscore(schedule, failed) - time.time()
    assert RETRY.waits[0] - 1 < wait <= RETRY.waits[0]

    services.redis.zadd(schedule, {failed: time.time() - 1})  # the wait is over
    assert drain(services).fired == 1
    assert reminders(services) == 2 and len(first_fails) == 3


def test_a_timer_whose_retries_are_spent_joins_the_failed_jobs(services, first_fails):
    task_id = scheduled_task(services)
    [job_id] = come_due(services, task_id, kinds=REMINDERS[:1])
    services.redis.hset(RETRIES_KEY.format(services.jobs.queue.name), job_id, RETRY.retries)

    assert drain(services).fired == 0

    [failed] = list_failed_jobs(services.jobs)
    assert (failed.id, failed.func) == (job_id, "bot.worker.entrypoints.fire_timer")
    assert failed.error == "RuntimeError: the first timer breaks"
    assert failed.args == [task_id, REMINDERS[0], task_of(services, task_id).timer_generation,
                           services.redis.hget(REGISTRY_KEY.format(task_id), job_id).decode()]
    assert services.redis.zscore(due_key(services.jobs), job_id) is None
    requeue_failed_job(services.jobs, job_id=job_id)  # a job of the main queue, as before drains
    assert job_id in services.jobs.queue.get_job_ids()


def test_a_timer_claimed_by_a_drain_that_died_fires_once_its_lease_is_over(services,
                                                                           monkeypatch):
    monkeypatch.setattr(tunables, "TIMER_LEASE", 1)
    task_id = scheduled_task(services)
    come_due(services, task_id)
    assert len(claim_due_timers(services.jobs, now=utcnow(), limit=10)) == 2  # and it died

    assert drain(services).fired == 0
    time.sleep(1.1)
    assert drain(services).fired == 2
    assert reminders(services) == 2


def test_a_claimed_timer_is_not_claimed_again(services):
    task_id = scheduled_task(services)
    ids = come_due(services, task_id)
    now = utcnow()

    first = claim_due_timers(services.jobs, now=now, limit=10)

    assert sorted(timer.job_id for timer in first) == sorted(ids)
    assert claim_due_timers(services.jobs, now=now, limit=10) == []
    assert first[0].task_id == task_id and first[0].at_iso.endswith("+00:00")


def test_a_timer_cancelled_as_it_came_due_is_dropped(services):
    task_id = scheduled_task(services)
    gone, kept = come_due(services, task_id)
    services.redis.hdel(REGISTRY_KEY.format(task_id), gone)  # as a later plan's cancel does

    claimed = claim_due_timers(services.jobs, now=utcnow(), limit=10)

    assert [timer.job_id for timer in claimed] == [kept]
    assert services.redis.zscore(due_key(services.jobs), gone) is None


def test_the_scheduler_asks_for_a_drain_when_a_timer_is_due(services):
    task_id = scheduled_task(services)
    scheduler = DrainingScheduler([services.jobs.queue], connection=services.redis)
    scheduler.acquire_locks()  # the one scheduler that holds the queue

    scheduler.enqueue_scheduled_jobs()
    assert not [i for i in services.jobs.queue.get_job_ids() if i.startswith("drain-")]

    come_due(services, task_id)
    scheduler.enqueue_scheduled_jobs()
    assert len([i for i in services.jobs.queue.get_job_ids() if i.startswith("drain-")]) == 1
    assert not services.redis.keys("rq:job:timer-*")  # no timer is a job of its own


def test_the_sweeper_asks_for_a_drain_when_a_timer_is_due(services):
    task_id = scheduled_task(services)
    come_due(services, task_id)  # and no scheduler ticks (its process died)

    sweep(services)

    assert len([i for i in services.jobs.queue.get_job_ids() if i.startswith("drain-")]) == 1

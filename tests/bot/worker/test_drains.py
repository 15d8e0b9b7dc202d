"""Drains: what the database says is to do is done in batches, once, whatever Redis does."""

import json
from datetime import timedelta

import pytest
from redis import Redis
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app
from bot.core import tunables
from bot.core.jobs import Jobs, outbox_job_id
from bot.worker import drains
from bot.worker.drains import drain, request_drain, run_drain
from bot.worker.process import make_worker
from bot.worker.sweeper import TIMERS_CHECKED_KEY, sweep
from bot.worker.timers import REGISTRY_KEY, due_key
from notifiers.queueing import queue_notification
from store.claims import hand_over
from store.models import OutboxMessage, OutboxStatus, Task
from store.types import utcnow
from tests.bot.workers_support import make_services, new_task, write_rules


def rows(services) -> list[OutboxMessage]:
    with services.db.transaction() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def drains_queued(services) -> list[str]:
    return [i for i in services.jobs.queue.get_job_ids() if i.startswith("drain-")]


def test_a_drain_sends_each_row_once_and_schedules_each_timer_once(
    database_url, redis_url, tmp_path, slack
):
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    task_id = new_task(services, sla="long")
    first = drain(services)
    assert (first.outbox, first.timers) == (1, 1)
    assert (drain(services).outbox, drain(services).timers) == (0, 0)  # nothing left
    [row] = rows(services)
    assert row.status == OutboxStatus.SENT and row.provider_message_id
    assert len(slack.sent_messages()) == 1
    with services.db.transaction() as session:
        task = session.get(Task, task_id)
        assert task.scheduled_generation == task.timer_generation
    scheduled = sorted(m.decode() for m in services.redis.zrange(due_key(services.jobs), 0, -1))
    assert len(scheduled) == 7 and all(i.startswith(f"timer-{task_id}-") for i in scheduled)
    services.close()


def test_requests_enqueue_one_drain_until_it_starts(database_url, redis_url, tmp_path):
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    for _ in range(3):
        request_drain(services)
    assert len(drains_queued(services)) == 1
    run_drain(services, owner="drain-test", seconds=0)  # a drain starts: requests count again
    request_drain(services)
    assert len(drains_queued(services)) == 2
    services.close()


def test_a_full_batch_asks_for_another_drain(database_url, redis_url, tmp_path, monkeypatch):
    monkeypatch.setattr(tunables, "OUTBOX_BATCH", 1)
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    new_task(services, sla="long")
    new_task(services, sla="long")
    done = run_drain(services, owner="drain-test", seconds=0)  # one step
    assert done.outbox == 1 and done.more
    assert len(drains_queued(services)) == 1
    services.close()


def test_after_a_step_short_of_a_batch_work_gathers_and_requests_wait_for_it(
    database_url, redis_url, tmp_path, monkeypatch
):
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    new_task(services, sla="long")
    gathered = []

    def sleep(seconds):  # while the drain lets work gather, a webhook asks for a drain
        request_drain(services)
        gathered.append((seconds, drains_queued(services)))

    monkeypatch.setattr(drains.time, "sleep", sleep)
    done = run_drain(services, owner="drain-test", seconds=60)
    assert done.outbox == 1
    assert gathered == [(tunables.DRAIN_GATHER, [])]  # one gathering, no other drain queued
    request_drain(services)  # the last step took the waiting key back: requests count again
    assert len(drains_queued(services)) == 1
    services.close()


def test_a_drain_job_lets_work_gather_before_its_first_step(database_url, redis_url, tmp_path,
                                                            monkeypatch, slack):
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    new_task(services, sla="long")
    request_drain(services)  # the task's commit: a drain job is queued
    queued = drains_queued(services)
    gathered = []

    def sleep(seconds):  # while the job waits, another task comes and asks for a drain
        if not gathered:
            new_task(services, sla="long")
            request_drain(services)
        gathered.append((seconds, drains_queued(services), len(slack.sent_messages())))

    monkeypatch.setattr(drains.time, "sleep", sleep)
    done = drains.drain_for_job(services)
    assert gathered[0] == (tunables.DRAIN_GATHER, queued, 0)  # nothing sent yet, and no
    assert done.outbox == 2  # other drain job queued: this one took both tasks' cards
    assert [r.status for r in rows(services)] == [OutboxStatus.SENT] * 2
    assert len(slack.sent_messages()) == 2
    services.close()


def test_a_drain_that_finds_another_one_asked_for_ends(database_url, redis_url, tmp_path,
                                                     monkeypatch):
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    new_task(services, sla="long")
    real_step = drains._step

    def step_then_a_request(services, **kwargs):
        result = real_step(services, **kwargs)
        request_drain(services)  # a webhook came during the step: a drain job is queued
        return result

    monkeypatch.setattr(drains, "_step", step_then_a_request)
    monkeypatch.setattr(drains.time, "sleep", lambda seconds: pytest.fail("gathered"))
    assert run_drain(services, owner="drain-test", seconds=60).outbox == 1  # that queued job
    assert len(drains_queued(services)) == 1  # takes what comes next
    services.close()


def test_a_change_of_state_cancels_the_previous_timers(database_url, redis_url, tmp_path):
    from store.lifecycle import Action
    from tests.bot.workers_support import move

    services = make_services(database_url, redis_url, write_rules(tmp_path))
    task_id = new_task(services, sla="long")
    drain(services)
    move(services, task_id, Action.ACCEPT)
    drain(services)
    scheduled = sorted(m.decode() for m in services.redis.zrange(due_key(services.jobs), 0, -1))
    # accepted: the offer expiry is gone; accepting is not answering the customer, so the
    # first-response timers stay (a reply ends them: tests/bot/usecases/test_first_response.py)
    assert [i.rsplit("-", 1)[0] for i in scheduled] == [
        f"timer-{task_id}-breach-first_response",
        f"timer-{task_id}-breach-resolution",
        f"timer-{task_id}-remind-first_response-50",
        f"timer-{task_id}-remind-first_response-75",
        f"timer-{task_id}-remind-resolution-50",
        f"timer-{task_id}-remind-resolution-75",
    ]
    services.close()


def test_a_drain_sends_different_tasks_rows_at_once_and_one_tasks_rows_in_order(
    database_url, redis_url, tmp_path, slack
):
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    first, *others = [new_task(services, sla="long") for _ in range(3)]
    with services.db.transaction() as session:  # a second card of the first task
        queue_notification(session, config=services.rules.current, kind="assigned",
                           task=session.get(Task, first), agent_id="ana", dedupe_key="again")
    slack.delay = 0.5  # Slack far away: every call is answered half a second later
    assert drain(services).outbox == 4

    def cards(task_id: int) -> list[float]:
        return [r.at.timestamp() for r in slack.calls("chat.postMessage")
                if f"T-{task_id}" in r.params["text"]]

    first_cards = [cards(task_id)[0] for task_id in (first, *others)]
    assert max(first_cards) - min(first_cards) < 0.5  # sent before any answer came
    earlier, later = cards(first)
    assert later - earlier >= 0.5  # sent once the first had its answer
    services.close()


def test_a_failed_send_goes_to_the_rows_own_job(database_url, redis_url, tmp_path):
    services = make_services(database_url, redis_url, write_rules(tmp_path))  # Slack is off
    new_task(services, sla="long")
    drain(services)
    [row] = rows(services)
    assert row.status == OutboxStatus.PENDING and row.claimed_by == outbox_job_id(row.id)
    assert services.jobs.queue.get_job_ids() == [outbox_job_id(row.id)]
    services.close()


def test_a_drain_without_redis_still_delivers_and_leaves_timers_for_later(
    database_url, redis_url, tmp_path, slack
):
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    new_task(services, sla="long")
    working_redis = services.redis
    services.redis = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=None)
    services.jobs = Jobs(services.redis)
    request_drain(services)  # logs, does not raise
    drain(services)
    assert [row.status for row in rows(services)] == [OutboxStatus.SENT]
    with services.db.transaction() as session:
        assert session.scalars(select(Task.scheduled_generation)).all() == [None]
    services.redis, services.jobs = working_redis, Jobs(working_redis)
    assert drain(services).timers == 1
    services.close()


def test_the_sweeper_frees_the_rows_of_a_job_that_is_gone(database_url, redis_url, tmp_path):
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    new_task(services, sla="long")
    [row] = rows(services)
    with services.db.transaction() as session:
        hand_over(session, OutboxMessage, [row.id], owner="drain-gone", now=utcnow())
    assert sweep(services).outbox == []  # claimed just now: not yet
    later = utcnow() + tunables.GRACE + timedelta(seconds=1)
    assert sweep(services, now=later).outbox == [row.id]
    [freed] = rows(services)
    assert (freed.claimed_by, freed.dispatched_at) == (None, None)
    assert len(drains_queued(services)) == 1  # and a drain was asked for
    services.close()


def test_the_sweeper_looks_for_lost_timers_after_a_loss_and_now_and_then(
    database_url, redis_url, tmp_path
):
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    task_id = new_task(services, sla="long")
    drain(services)
    assert sweep(services).timers == []  # it looked: nothing missing
    schedule, registry = due_key(services.jobs), REGISTRY_KEY.format(task_id)
    lost = {m.decode(): score for m, score in services.redis.zrange(schedule, 0, -1,
                                                                    withscores=True)}
    services.redis.delete(schedule, registry)  # as a Redis that evicts keys would
    assert sweep(services).timers == []  # looked a moment ago: one SET NX, no look
    services.redis.delete(TIMERS_CHECKED_KEY)  # TIMERS_CHECK_EVERY later
    assert sorted(sweep(services).timers) == sorted(lost)
    assert dict(services.redis.zrange(schedule, 0, -1, withscores=True)) == {
        job_id.encode(): score for job_id, score in lost.items()}
    services.close()


def test_failed_jobs_are_listed_with_their_error_and_requeued(
    database_url, redis_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    services.jobs.queue.enqueue("json.loads", "{not json", job_id="broken-1")  # no Retry
    make_worker(services).work(burst=True, logging_level="WARNING")

    runner = CliRunner()
    listed = runner.invoke(app, ["jobs", "failed", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert row["id"] == "broken-1" and "JSONDecodeError" in row["error"]
    assert "broken-1" in runner.invoke(app, ["jobs", "failed"]).output

    requeued = runner.invoke(app, ["jobs", "requeue", "broken-1"])
    assert requeued.exit_code == 0 and "1 job(s) requeued" in requeued.output
    assert services.jobs.queue.get_job_ids() == ["broken-1"]
    assert runner.invoke(app, ["jobs", "requeue"]).exit_code == 2
    services.close()

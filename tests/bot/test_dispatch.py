"""dispatch_pending: what the database says is to do becomes RQ jobs, once."""

import json

from redis import Redis
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app
from bot.dispatch import dispatch_pending, outbox_job_id
from bot.jobs import Jobs
from bot.worker import make_worker
from store.models import OutboxMessage, Task
from tests.bot.workers_support import make_services, new_task, write_rules


def test_dispatch_enqueues_each_row_and_timer_once(database_url, redis_url, tmp_path):
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    task_id = new_task(services, sla="long")
    dispatch_pending(services)
    dispatch_pending(services)  # a second call finds nothing new
    with services.db.transaction() as session:
        rows = session.scalars(select(OutboxMessage)).all()
        task = session.get(Task, task_id)
        assert all(row.dispatched_at is not None for row in rows)
        assert task.scheduled_generation == task.timer_generation
    queued = services.jobs.queue.get_job_ids()
    assert queued == [outbox_job_id(row.id) for row in rows]
    scheduled = sorted(services.jobs.queue.scheduled_job_registry.get_job_ids())
    assert len(scheduled) == 7 and all(i.startswith(f"timer-{task_id}-") for i in scheduled)
    services.close()


def test_a_change_of_state_cancels_the_previous_timers(database_url, redis_url, tmp_path):
    from store.lifecycle import Action
    from tests.bot.workers_support import move

    services = make_services(database_url, redis_url, write_rules(tmp_path))
    task_id = new_task(services, sla="long")
    dispatch_pending(services)
    move(services, task_id, Action.ACCEPT)
    dispatch_pending(services)
    scheduled = sorted(services.jobs.queue.scheduled_job_registry.get_job_ids())
    # accepted: no offer expiry, no first-response timers; only the resolution ones remain
    assert [i.rsplit("-", 1)[0] for i in scheduled] == [
        f"timer-{task_id}-breach-resolution",
        f"timer-{task_id}-remind-resolution-50",
        f"timer-{task_id}-remind-resolution-75",
    ]
    services.close()


def test_dispatch_survives_redis_down_and_leaves_rows_for_later(database_url, redis_url, tmp_path):
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    new_task(services, sla="long")
    working_redis = services.redis
    services.redis = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=None)
    services.jobs = Jobs(services.redis)
    dispatch_pending(services)  # logs, does not raise
    with services.db.transaction() as session:
        assert session.scalars(select(OutboxMessage.dispatched_at)).all() == [None]
        assert session.scalars(select(Task.scheduled_generation)).all() == [None]
    services.redis, services.jobs = working_redis, Jobs(working_redis)
    dispatch_pending(services)
    with services.db.transaction() as session:
        assert None not in session.scalars(select(OutboxMessage.dispatched_at)).all()
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

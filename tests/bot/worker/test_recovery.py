"""Recovery: workers killed with SIGKILL mid-job, and a Redis that lost everything."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from rq.registry import StartedJobRegistry
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from bot.core import tunables
from bot.webhooks.whatsapp import event_rows
from bot.worker.drains import drain, request_drain
from bot.worker.sweeper import sweep
from bot.worker.timers import due_key
from sandbox.inbound import whatsapp_message
from sandbox.slack import FakeSlack
from store.events import Audit
from store.inbound import insert_events
from store.models import EventStatus, InboundEvent, OutboxMessage, OutboxStatus, Task
from tests.bot.cli.test_run_scaled import wait_workers
from tests.bot.workers_support import (
    events_of,
    make_services,
    new_task,
    work_until,
    write_rules,
)


@pytest.fixture
def processes():
    """Started subprocesses; whatever is still running at the end is killed at once (the
    workers here are killed on purpose: no warm shutdown to wait for)."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def start_worker(env: dict, log: Path, processes: list) -> subprocess.Popen:
    """`opsbot worker` in its own process group (so that a kill takes its scheduler too)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "worker", "--no-migrate"],
        env={**os.environ, **env}, cwd=log.parent, start_new_session=True,
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    processes.append(process)
    return process


def kill_group(process: subprocess.Popen, sig=signal.SIGKILL) -> None:
    os.killpg(process.pid, sig)
    process.wait(timeout=10)


def wait_for(predicate, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def started_drains(services) -> list[str]:
    registry = StartedJobRegistry(queue=services.jobs.queue)
    return [i for i in registry.get_job_ids(cleanup=False) if i.startswith("drain-")]


@contextmanager
def events_locked(database_url: str):
    """Holds a lock that processing waits on (the drain is then mid-flight)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(url.database, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
        return
    engine = create_engine(database_url)
    with engine.connect() as connection:
        connection.execute(text("LOCK TABLE inbound_events IN ACCESS EXCLUSIVE MODE"))
        yield
        connection.rollback()
    engine.dispose()


def store_message(services, text_body: str) -> int:
    body = json.dumps(whatsapp_message(
        wa_id="34600000001", name="Lucía", phone_id="PHONE",
        message={"type": "text", "text": {"body": text_body}},
    )).encode()  # fmt: skip
    rows = event_rows(body)
    with services.db.transaction() as session:
        insert_events(session, rows=rows)
        return session.scalar(select(func.max(InboundEvent.id)))


@pytest.mark.timeout(120)
def test_killed_workers_lose_nothing(database_url, redis_url, tmp_path, monkeypatch, processes):
    """One worker is killed while delivering a notification (slow Slack), another while
    processing a message (waiting on a lock); a fresh worker completes both, once."""
    rules = write_rules(tmp_path)
    with FakeSlack(delay=8) as slack:
        env = {
            "DATABASE_URL": database_url, "REDIS_URL": redis_url, "RULES_PATH": str(rules),
            "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "secret",
            "SLACK_API_BASE_URL": slack.api_url,
        }  # fmt: skip
        for name, value in env.items():  # the in-test services read the same settings
            monkeypatch.setenv(name, value)
        services = make_services(database_url, redis_url, rules)
        task_id = new_task(services, accept=False, sla="long")
        with services.db.transaction() as session:
            outbox_id = session.scalar(select(OutboxMessage.id).where(
                OutboxMessage.task_id == task_id, OutboxMessage.kind == "assigned"))  # fmt: skip
        # Both workers are up before anything starts: the 8 s Slack call is the window in
        # which both must be killed, and a worker still starting could let it close.
        workers = [start_worker(env, tmp_path / f"worker-{n}.log", processes) for n in (1, 2)]
        wait_workers(redis_url, 2)
        request_drain(services)
        wait_for(lambda: claimed(services, outbox_id), 20, "delivery started")

        event_id = store_message(services, "hola, ¿dónde está mi pedido?")
        with events_locked(database_url):
            request_drain(services)  # the other worker: its drain waits for the lock
            wait_for(lambda: len(started_drains(services)) == 2, 20, "processing")
            time.sleep(0.5)
            for worker in workers:  # one inside its 8 s Slack call, one waiting for the lock
                kill_group(worker)
        slack.delay = 0

        rescuer = start_worker(env, tmp_path / "rescuer.log", processes)
        try:
            took = wait_for(lambda: _done(services, event_id, outbox_id), 60, "recovery")
        finally:
            kill_group(rescuer, signal.SIGTERM)
        assert took < 60
        with services.db.transaction() as session:
            assert session.scalar(select(func.count()).select_from(Task)) == 2  # one new task
        with services.db.transaction() as session:
            sent = session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.channel == "slack", OutboxMessage.status == OutboxStatus.SENT
                )
            ).all()
        # one post per delivered card: the killed call never reached chat.postMessage
        assert len(slack.sent_messages()) == len(sent)
        assert sum(1 for row in sent if row.id == outbox_id) == 1
    services.close()


def claimed(services, outbox_id: int) -> bool:
    with services.db.transaction() as session:
        owner = session.get(OutboxMessage, outbox_id).claimed_by
    return owner is not None and owner in started_drains(services)


def _done(services, event_id: int, outbox_id: int) -> bool:
    with services.db.transaction() as session:
        event = session.get(InboundEvent, event_id)
        row = session.get(OutboxMessage, outbox_id)
        return event.status == EventStatus.PROCESSED and row.status == OutboxStatus.SENT


def test_sweeper_restores_what_a_flushed_redis_lost(database_url, redis_url, tmp_path,
                                                   monkeypatch):
    """Pending timers and outbox rows survive a FLUSHDB: the sweeper re-drives them from
    the database and each fires once."""
    # A short grace: the workers must be running before the 50 % reminder's 4 s are up and
    # the 75 % one's 6 s (a plan made later sends only the latest reminder), however slow
    # the machine.
    monkeypatch.setattr(tunables, "GRACE", timedelta(seconds=2))
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    # answered: only the resolution reminders, at 4 s and 6 s
    task_id = new_task(services, sla="normal", accept=True, answered=True)
    drain(services)  # Slack is off: each card goes to its own delivery job
    with services.db.transaction() as session:
        pending = session.scalars(select(OutboxMessage.id)).all()
    assert pending and services.redis.zcard(due_key(services.jobs)) == 3
    services.redis.flushdb()

    report = sweep(services)
    assert len(report.timers) == 3  # the outbox rows wait GRACE before they count as lost
    time.sleep(2)  # tunables.GRACE
    assert sorted(sweep(services).outbox) == sorted(pending)

    work_until(services, lambda: bool(events_of(services, task_id, Audit.ESCALATED)), timeout=15)
    sweep(services)  # a second pass after the timers fired must not bring any back
    work_until(services, lambda: True, timeout=5)
    reminders = events_of(services, task_id, Audit.REMINDER)
    assert [e.details["percent"] for e in reminders] == [50, 75]
    assert len(events_of(services, task_id, Audit.ESCALATED)) == 2  # notify + reassign, once
    with services.db.transaction() as session:
        reminder_rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.task_id == task_id,
                                        OutboxMessage.kind == "reminder")).all()  # fmt: skip
        assert len(reminder_rows) == 2
        assert all(row.dispatched_at is not None for row in reminder_rows)
    services.close()


def test_sigterm_lets_the_current_job_finish(
    database_url, redis_url, tmp_path, monkeypatch, processes
):
    rules = write_rules(tmp_path)
    with FakeSlack(delay=1.5) as slack:
        env = {
            "DATABASE_URL": database_url, "REDIS_URL": redis_url, "RULES_PATH": str(rules),
            "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "secret",
            "SLACK_API_BASE_URL": slack.api_url,
        }  # fmt: skip
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        services = make_services(database_url, redis_url, rules)
        new_task(services, sla="long")
        request_drain(services)
        with services.db.transaction() as session:
            outbox_id = session.scalar(select(OutboxMessage.id))
        worker = start_worker(env, tmp_path / "worker.log", processes)
        wait_for(lambda: claimed(services, outbox_id), 20, "delivery started")
        worker.send_signal(signal.SIGTERM)  # warm shutdown, mid-delivery
        assert worker.wait(timeout=20) == 0
        with services.db.transaction() as session:
            assert session.get(OutboxMessage, outbox_id).status == OutboxStatus.SENT
        assert len(slack.sent_messages()) == 1
    services.close()

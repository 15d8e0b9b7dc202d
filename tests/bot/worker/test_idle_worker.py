"""A worker left idle (issue 14): its Redis client must outwait RQ's blocking pop for a job.

With redis-py's default 5 s answer timeout, the 15 s pop of an idle worker timed out, RQ logged
"could not connect to Redis instance" and backed off up to 60 s, and a message arriving then
waited that long. Here `opsbot serve` and `opsbot worker` run as an operator starts them.
"""

import re
import time
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, Worker
from rq.exceptions import DequeueTimeout
from sqlalchemy import func, select

from bot.core.bootstrap import build_services
from bot.worker.process import make_worker
from sandbox.stack import free_port
from store.db import Database
from store.models import EventStatus, InboundEvent, Task
from tests.bot.cli.test_run_scaled import spawn, wait_ready
from tests.bot.whatsapp_kit import (
    APP_SECRET,
    PHONE_ID,
    RULES,
    TEXT,
    VERIFY_TOKEN,
    make_settings,
    message_body,
    post,
)
from tests.fakes import FakeGraph

# Three of RQ's 15 s blocking pops, past the 30 s health check interval. The defect showed
# within the first pop (a 5 s answer timeout): an error logged at once, then RQ's backoff
# (growing up to 60 s), which the message sent after 45 s would have met.
IDLE_SECONDS = 45
WITHIN_SECONDS = 1.0
# An error (`%(asctime)s %(levelname)s %(name)s: ...`) or a traceback, or a line naming Redis
# trouble at any level. Not warnings: pywa warns about its HTTP client at every send.
TROUBLE = re.compile(
    r" (ERROR|CRITICAL) |Traceback|(?i:could not connect|timeout reading"
    r"|redis connection timeout|redis unavailable|connectionerror|timeouterror)"
)


@pytest.mark.slow
@pytest.mark.timeout(IDLE_SECONDS + 120)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_idle_worker_logs_no_redis_error_and_takes_a_message_within_a_second(
    database_url, redis_url, tmp_path, processes
):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    with FakeGraph(token="TEST-TOKEN") as graph:
        env = {
            "DATABASE_URL": database_url, "REDIS_URL": redis_url, "RULES_PATH": str(rules),
            "WHATSAPP_TOKEN": "TEST-TOKEN", "WHATSAPP_APP_SECRET": APP_SECRET,
            "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN, "WHATSAPP_PHONE_ID": PHONE_ID,
            "WHATSAPP_API_BASE_URL": graph.url,
        }  # fmt: skip
        port = free_port()
        logs = {"web": tmp_path / "web.log", "worker": tmp_path / "worker.log"}
        spawn(["serve", "--no-migrate", "--port", str(port)], env, logs["web"], processes)
        worker = spawn(["worker", "--no-migrate"], env, logs["worker"], processes)
        wait_ready(f"http://127.0.0.1:{port}")
        _wait_until_worker_idle(redis_url, timeout=30)

        time.sleep(IDLE_SECONDS)
        while_idle = _redis_trouble(logs)
        sent = time.monotonic()
        body = message_body(TEXT, wamid="wamid.IDLE")
        assert post(f"http://127.0.0.1:{port}", body).status_code == 200
        took = _wait_until_processed(database_url, since=sent, timeout=75)  # > RQ's 60 s cap
        assert not while_idle and took < WITHIN_SECONDS, (
            f"processed {took:.2f} s after it was sent; logged while idle:\n"
            + "\n".join(while_idle)
        )
        _wait_until(graph.sent_messages, timeout=10)  # the customer's acknowledgement
    assert worker.poll() is None, "the worker exited"
    trouble = _redis_trouble(logs)
    assert not trouble, "\n".join(trouble)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_connection_opened_before_rqs_worker_outwaits_its_blocking_dequeue(tmp_path, redis_url):
    # The test above catches this only when the worker's pop happens to take that connection
    # (RQ raises the pool's timeout for new connections only); here it always does.
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'opsbot.db'}", redis_url)
    services = build_services(settings, migrate=False, for_worker=True)
    try:
        services.redis.ping()  # run_worker talks to Redis (tune_redis, the alive key) first
        worker = make_worker(services)
        start = time.monotonic()
        with pytest.raises(DequeueTimeout):
            Queue.dequeue_any([services.jobs.queue], worker.dequeue_timeout, worker.connection)
        assert time.monotonic() - start >= worker.dequeue_timeout
    finally:
        services.close()


def _wait_until(done, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not done within {timeout} s"
        time.sleep(0.05)


def _wait_until_worker_idle(redis_url: str, timeout: float) -> None:
    redis = Redis.from_url(redis_url)
    try:
        _wait_until(
            lambda: any(w.get_state() == "idle" for w in Worker.all(connection=redis)), timeout
        )
    finally:
        redis.close()


def _wait_until_processed(database_url: str, *, since: float, timeout: float) -> float:
    """Seconds from `since` (a monotonic time) until the event is processed into a task."""
    database = Database(database_url)
    try:
        while time.monotonic() - since < timeout:
            with database.transaction(readonly=True) as session:
                status = session.scalar(select(InboundEvent.status))
                tasks = session.scalar(select(func.count()).select_from(Task))
            if status == EventStatus.PROCESSED and tasks == 1:
                return time.monotonic() - since
            time.sleep(0.01)
    finally:
        database.dispose()
    raise AssertionError(f"not processed within {timeout} s (event {status}, {tasks} task(s))")


def _redis_trouble(logs: dict[str, Path]) -> list[str]:
    """The lines of the processes' logs that say something went wrong."""
    return [
        f"{name}: {line}"
        for name, path in logs.items()
        for line in path.read_text(errors="replace").splitlines()
        if TROUBLE.search(line)
    ]

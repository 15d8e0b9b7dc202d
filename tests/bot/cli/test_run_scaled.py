"""Production shape: two `opsbot serve` and two `opsbot worker` processes on PostgreSQL and
Redis at once; Meta delivers every message to both web processes (a redelivery). No task,
notification or reminder may be duplicated."""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import product

import httpx
import pytest
from redis import Redis
from sqlalchemy import func, select

from bot.worker.sweeper import ALIVE_KEY
from sandbox.slack import FakeSlack
from sandbox.stack import free_port
from store.events import Audit
from store.models import EventStatus, InboundEvent, Message, OutboxMessage, OutboxStatus, Task
from store.models import TaskEvent as Event
from tests.bot.whatsapp_kit import APP_SECRET, PHONE_ID, VERIFY_TOKEN, message_body, post
from tests.bot.workers_support import RULES, write_rules
from tests.fakes import FakeGraph

SCALED_RULES = (
    RULES
    + """\
rules:
  - name: everything
    then: {category: support, team: ops,
           reply: {es: "Hola, #{task.number} en marcha.", en: "Hi, #{task.number} is on."}}
"""
)
CUSTOMERS = ("34600000001", "34600000002", "34600000003")


def spawn(args: list[str], env: dict, log, processes: list) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", *args], env={**os.environ, **env}, cwd=log.parent,
        start_new_session=True, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    processes.append(process)
    return process


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready within {timeout} s")


def wait_workers(redis_url: str, count: int, timeout: float = 30) -> None:
    """Until `count` workers keep their alive key: a worker still starting when the messages
    come would plan their timers after the reminders' instants (which are then skipped)."""
    redis = Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if len(redis.keys(ALIVE_KEY.format("*"))) >= count:
                return
            time.sleep(0.2)
    finally:
        redis.close()
    raise AssertionError(f"{count} workers not alive within {timeout} s")


@pytest.mark.timeout(120)
def test_two_webs_and_two_workers_do_everything_once(database_url, redis_url, tmp_path, processes):
    if database_url.startswith("sqlite"):
        pytest.skip("the scaled production shape runs on PostgreSQL")
    from store.db import Database

    with FakeGraph(token="TEST-TOKEN") as graph, FakeSlack() as slack:
        env = {
            "DATABASE_URL": database_url, "REDIS_URL": redis_url,
            "RULES_PATH": str(write_rules(tmp_path, SCALED_RULES)),
            "WHATSAPP_TOKEN": "TEST-TOKEN", "WHATSAPP_APP_SECRET": APP_SECRET,
            "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN, "WHATSAPP_PHONE_ID": PHONE_ID,
            "WHATSAPP_API_BASE_URL": graph.url, "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": "secret", "SLACK_API_BASE_URL": slack.api_url,
        }  # fmt: skip
        urls = []
        for index in range(2):
            port = free_port()
            spawn(["serve", "--port", str(port)], env, tmp_path / f"web{index}.log", processes)
            urls.append(f"http://127.0.0.1:{port}")
        for index in range(2):
            spawn(["worker"], env, tmp_path / f"worker{index}.log", processes)
        for url in urls:
            wait_ready(url)

        bodies = [
            message_body({"type": "text", "text": {"body": f"hola {n}"}},
                         wamid=f"wamid.SCALE{customer}{n}", wa_id=customer, name="Cliente")
            for customer, n in product(CUSTOMERS, range(2))
        ]  # fmt: skip
        posts = [(url, body) for body in bodies for url in urls]  # each to both web processes
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda pair: post(*pair), posts))
        assert all(answer.status_code == 200 for answer in answers)

        database = Database(database_url)
        try:
            _wait_until_reminded(database, timeout=45)
            _assert_everything_once(database, slack, graph)
        finally:
            database.dispose()


def _wait_until_reminded(database, timeout: float) -> None:
    """Every task breached its first response (4 s) and every delivery is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with database.transaction() as session:
            tasks = session.scalar(select(func.count()).select_from(Task))
            breached = session.scalar(
                select(func.count(func.distinct(Event.task_id))).where(
                    Event.action == Audit.ESCALATED
                )
            )
            pending = session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.PENDING)
            )
        if tasks == len(CUSTOMERS) and breached == tasks and not pending:
            return
        time.sleep(0.5)
    raise AssertionError(f"tasks={tasks} breached={breached} pending outbox={pending}")


def _assert_everything_once(database, slack: FakeSlack, graph: FakeGraph) -> None:
    with database.transaction() as session:
        events = session.scalars(select(InboundEvent)).all()
        assert len(events) == 6 and {e.status for e in events} == {EventStatus.PROCESSED}
        assert session.scalar(select(func.count()).select_from(Message).where(
            Message.direction == "inbound")) == 6  # fmt: skip
        assert session.scalar(select(func.count()).select_from(Task)) == len(CUSTOMERS)
        sent = session.scalars(select(OutboxMessage).where(
            OutboxMessage.status == OutboxStatus.SENT)).all()  # fmt: skip
        audit = session.scalars(select(Event).where(
            Event.action.in_([Audit.REMINDER, Audit.ESCALATED]))).all()  # fmt: skip
    assert len(slack.sent_messages()) == sum(1 for row in sent if row.channel == "slack")
    assert len(graph.sent_messages()) == sum(1 for row in sent if row.channel == "whatsapp")
    reminders = [(e.task_id, e.details["kind"], e.details["percent"], e.details["at"])
                 for e in audit if e.action == Audit.REMINDER]  # fmt: skip
    assert reminders and len(reminders) == len(set(reminders))
    steps = [(e.task_id, e.details["step"], e.details["deadline"], e.details["due"])
             for e in audit if e.action == Audit.ESCALATED]  # fmt: skip
    assert len(steps) == len(set(steps))

"""Production shape: `opsbot serve` and `opsbot worker` processes side by side on PostgreSQL
and Redis. Two webs and two workers, Meta delivering every message to both web processes (a
redelivery): no task, notification or reminder may be duplicated. Two webs and four workers
under one burst of 2,000 messages: every message processed once, no duplicate notification."""

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import httpx
import pytest
from redis import Redis
from sqlalchemy import func, select

from bot.worker.cpu import CPU_KEY
from bot.worker.sweeper import ALIVE_KEY
from sandbox.slack import FakeSlack
from sandbox.stack import free_port
from store.db import Database
from store.events import Audit
from store.models import EventStatus, InboundEvent, Message, OutboxMessage, OutboxStatus, Task
from store.models import TaskEvent as Event
from tests.bot.whatsapp_kit import APP_SECRET, PHONE_ID, VERIFY_TOKEN, message_body, post
from tests.bot.workers_support import RULES, write_rules
from tests.fakes import FakeGraph

EVERYTHING = """\
rules:
  - name: everything
    then: {category: support, team: ops,
           reply: {es: "Hola, #{task.number} en marcha.", en: "Hi, #{task.number} is on."}}
"""
SCALED_RULES = RULES + EVERYTHING
CUSTOMERS = ("34600000001", "34600000002", "34600000003")


@dataclass(frozen=True)
class Stack:
    """The running processes' URLs (web processes) and the fakes they talk to."""

    urls: list[str]
    graph: FakeGraph
    slack: FakeSlack


@contextmanager
def running_stack(database_url: str, redis_url: str, tmp_path: Path, processes: list, *,
                  rules: str, webs: int, workers: int) -> Iterator[Stack]:
    """`webs` `opsbot serve` and `workers` `opsbot worker` processes on the fakes, ready and
    alive; each logs to tmp_path/web<i>.log or worker<i>.log. PostgreSQL only (skips)."""
    if database_url.startswith("sqlite"):
        pytest.skip("the scaled production shape runs on PostgreSQL")
    with FakeGraph(token="TEST-TOKEN") as graph, FakeSlack() as slack:
        env = {
            "DATABASE_URL": database_url, "REDIS_URL": redis_url,
            "RULES_PATH": str(write_rules(tmp_path, rules)),
            "WHATSAPP_TOKEN": "TEST-TOKEN", "WHATSAPP_APP_SECRET": APP_SECRET,
            "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN, "WHATSAPP_PHONE_ID": PHONE_ID,
            "WHATSAPP_API_BASE_URL": graph.url, "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": "secret", "SLACK_API_BASE_URL": slack.api_url,
        }  # fmt: skip
        urls = []
        for index in range(webs):
            port = free_port()
            spawn(["serve", "--port", str(port)], env, tmp_path / f"web{index}.log", processes)
            urls.append(f"http://127.0.0.1:{port}")
        for index in range(workers):
            spawn(["worker"], env, tmp_path / f"worker{index}.log", processes)
        for url in urls:
            wait_ready(url)
        wait_workers(redis_url, workers)
        yield Stack(urls, graph, slack)


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
    with running_stack(database_url, redis_url, tmp_path, processes, rules=SCALED_RULES,
                       webs=2, workers=2) as stack:
        bodies = [
            message_body({"type": "text", "text": {"body": f"hola {n}"}},
                         wamid=f"wamid.SCALE{customer}{n}", wa_id=customer, name="Cliente")
            for customer, n in product(CUSTOMERS, range(2))
        ]  # fmt: skip
        posts = [(url, body) for body in bodies for url in stack.urls]  # to both webs
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda pair: post(*pair), posts))
        assert all(answer.status_code == 200 for answer in answers)

        database = Database(database_url)
        try:
            _wait_until_reminded(database, timeout=45)
            _wait_sends_settled(database, stack.slack, stack.graph, timeout=30)
            _assert_everything_once(database)
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


def _wait_sends_settled(database, slack: FakeSlack, graph: FakeGraph, timeout: float) -> None:
    """Until each Slack post is one SENT Slack row (its ts, the row's provider id) and each
    message to WhatsApp one SENT WhatsApp row. Timers still fire after the breach, so a send
    may be between the fake and its row's record for a moment; a duplicate never settles."""
    deadline = time.monotonic() + timeout
    while True:
        posted = sorted(message["ts"] for _, message in slack.posted())
        to_whatsapp = len(graph.sent_messages())
        with database.transaction() as session:
            rows = session.execute(select(OutboxMessage.channel, OutboxMessage.provider_message_id)
                                   .where(OutboxMessage.status == OutboxStatus.SENT)).all()
        slack_rows = sorted(row.provider_message_id for row in rows if row.channel == "slack")
        whatsapp_rows = sum(1 for row in rows if row.channel == "whatsapp")
        if posted == slack_rows and to_whatsapp == whatsapp_rows:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"Slack posts {len(posted)} vs SENT rows {len(slack_rows)}, "
                                 f"WhatsApp messages {to_whatsapp} vs SENT rows {whatsapp_rows}")
        time.sleep(0.5)


def _assert_everything_once(database) -> None:
    with database.transaction() as session:
        events = session.scalars(select(InboundEvent)).all()
        assert len(events) == 6 and {e.status for e in events} == {EventStatus.PROCESSED}
        assert session.scalar(select(func.count()).select_from(Message).where(
            Message.direction == "inbound")) == 6  # fmt: skip
        assert session.scalar(select(func.count()).select_from(Task)) == len(CUSTOMERS)
        audit = session.scalars(select(Event).where(
            Event.action.in_([Audit.REMINDER, Audit.ESCALATED]))).all()  # fmt: skip
    reminders = [(e.task_id, e.details["kind"], e.details["percent"], e.details["at"])
                 for e in audit if e.action == Audit.REMINDER]  # fmt: skip
    assert reminders and len(reminders) == len(set(reminders))
    steps = [(e.task_id, e.details["step"], e.details["deadline"], e.details["due"])
             for e in audit if e.action == Audit.ESCALATED]  # fmt: skip
    assert len(steps) == len(set(steps))


# One burst: 2 webs, 4 workers, 2,000 messages ---------------------------------------------

# SLAs of hours, reminders at 30 and 45 min, unaccepted after an hour: no timer fires during
# the test (each task still plans them), so every notification is a card or a follow-up.
# Capacity for every task (the default, 10, would leave most of them unassigned).
BURST_RULES = (
    """\
version: 1
timezone: UTC
business_hours: {mon-sun: "00:00-23:59"}
sla:
  normal: {first_response: 1h, resolution: 2h, business_hours: false}
escalation: {remind_at: [50%, 75%], unaccepted_after: 1h, on_breach: [notify_supervisor, reassign]}
teams:
  ops: {supervisor: sam, strategy: round_robin}
agents:
  - {id: ana, name: Ana, teams: [ops], slack: U0ANA, capacity: 1000}
  - {id: bob, name: Bob, teams: [ops], slack: U0BOB, capacity: 1000}
  - {id: sam, name: Sam, slack: U0SAM}
"""
    + EVERYTHING
)
BURST_CUSTOMERS = 500
PER_CUSTOMER = 4  # the first opens the customer's task, the others thread into it
SENDERS = 64  # requests in flight
LOADGEN = Path(__file__).resolve().parents[3] / "bench" / "loadgen.py"


@dataclass(frozen=True)
class Burst:
    posts: list[tuple[str, bytes]]  # (web URL, signed body), in sending order
    wamids: dict[str, str]  # wamid -> the customer's wa_id


def _burst(urls: list[str]) -> Burst:
    """BURST_CUSTOMERS × PER_CUSTOMER messages, a customer's together (different workers race
    on one customer), alternating web processes; each customer's first message delivered
    again to the other web: for even customers at once (the two webs race), for odd ones at
    the end of the burst (seconds later, its first delivery maybe processed)."""
    posts, late, wamids = [], [], {}
    for customer in range(BURST_CUSTOMERS):
        wa_id = f"3461{customer:07d}"
        for n in range(PER_CUSTOMER):
            wamid = f"wamid.BURST{customer:04d}x{n}"
            body = json.dumps(message_body(
                {"type": "text", "text": {"body": f"Pedido {customer}, mensaje {n}"}},
                wamid=wamid, wa_id=wa_id, name=f"Cliente {customer}")).encode()  # fmt: skip
            wamids[wamid] = wa_id
            web = (customer + n) % len(urls)
            posts.append((urls[web], body))
            if n == 0:
                again = (urls[(web + 1) % len(urls)], body)
                (posts if customer % 2 == 0 else late).append(again)
    return Burst(posts + late, wamids)


def _send(posts: list[tuple[str, bytes]]) -> list[int]:
    """Posts every signed body as fast as bench/loadgen.py goes (raw HTTP/1.1 on keep-alive
    connections: httpx took 10 ms of this process's CPU a request, a core the processes under
    test lost), each web's share from its own thread; returns the statuses, in order."""
    spec = importlib.util.spec_from_file_location("loadgen", LOADGEN)
    loadgen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loadgen)
    shares: dict[int, list[int]] = {}
    for index, (url, _) in enumerate(posts):
        shares.setdefault(int(url.rsplit(":", 1)[1]), []).append(index)

    def send_share(port: int) -> list[int]:
        requests = [loadgen.signed_post(posts[i][1], host=f"127.0.0.1:{port}", secret=APP_SECRET)
                    for i in shares[port]]  # fmt: skip
        results, _ = loadgen.run(port, requests, concurrency=SENDERS // len(shares))
        return [result.status if result else 0 for result in results]

    statuses = [0] * len(posts)
    with ThreadPoolExecutor(len(shares)) as pool:
        for port, answers in zip(shares, pool.map(send_share, shares), strict=True):
            for index, status in zip(shares[port], answers, strict=True):
                statuses[index] = status
    return statuses


@pytest.mark.slow
@pytest.mark.timeout(360)  # ~60 s alone on 2 cores; 85 s when they are shared
def test_two_webs_and_four_workers_take_a_burst_of_2000_messages_once(
    database_url, redis_url, tmp_path, processes
):
    with running_stack(database_url, redis_url, tmp_path, processes, rules=BURST_RULES,
                       webs=2, workers=4) as stack:
        burst = _burst(stack.urls)
        began = time.monotonic()
        statuses = _send(burst.posts)
        sent_in = time.monotonic() - began
        assert Counter(statuses) == {200: len(burst.posts)}
        database = Database(database_url)
        try:
            _wait_until_done(database, len(burst.wamids), timeout=180)
            print(f"{len(burst.posts)} posts in {sent_in:.1f} s, all done in "
                  f"{time.monotonic() - began:.1f} s")
            _assert_burst_once(database, stack, burst)
        finally:
            database.dispose()
        _assert_cpu_published(redis_url, workers=4)


def _assert_cpu_published(redis_url: str, workers: int) -> None:
    """Each worker publishes its CPU time by stage (`bot.worker.cpu`); the burst's work
    was shared, so each applied events and sent something."""
    redis = Redis.from_url(redis_url)
    try:
        published = [redis.hgetall(key) for key in redis.keys(CPU_KEY.format("*"))]
    finally:
        redis.close()
    assert len(published) == workers
    for stages in published:
        assert float(stages[b"processing"]) > 0 and float(stages[b"delivery"]) > 0
        assert float(stages[b"process"]) >= float(stages[b"processing"])


def _wait_until_done(database: Database, messages: int, timeout: float) -> None:
    """Until every inbound event is processed (or failed) and no delivery is pending."""
    deadline = time.monotonic() + timeout
    while True:
        with database.transaction() as session:
            events = dict(session.execute(
                select(InboundEvent.status, func.count()).group_by(InboundEvent.status)).all())
            outbox = dict(session.execute(
                select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
        done = sum(events.get(s, 0) for s in (EventStatus.PROCESSED, EventStatus.FAILED))
        pending = events.get(EventStatus.PENDING) or outbox.get(OutboxStatus.PENDING)
        if done >= messages and not pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not done within {timeout} s: inbound events {events}, "
                                 f"outbox {outbox}, {messages} messages sent")
        time.sleep(0.5)


def _assert_burst_once(database: Database, stack: Stack, burst: Burst) -> None:
    with database.transaction() as session:
        events = session.execute(select(InboundEvent.provider_event_id, InboundEvent.status,
                                        InboundEvent.error)).all()
        inbound = session.execute(select(Message.provider_message_id, Message.task_id).where(
            Message.direction == "inbound")).all()  # fmt: skip
        replies = session.execute(select(Message.task_id, Message.text).where(
            Message.direction == "outbound")).all()  # fmt: skip
        tasks = session.scalars(select(Task.id)).all()
        outbox = session.execute(select(OutboxMessage.id, OutboxMessage.channel,
                                        OutboxMessage.kind, OutboxMessage.task_id,
                                        OutboxMessage.status,
                                        OutboxMessage.provider_message_id)).all()
        timers = session.scalar(select(func.count()).select_from(Event).where(
            Event.action.in_([Audit.REMINDER, Audit.ESCALATED])))  # fmt: skip
    # Every message processed once: one event and one message per wamid, none failed.
    assert sorted(e.provider_event_id for e in events) == sorted(burst.wamids)
    failed = [(e.provider_event_id, e.error) for e in events if e.status != EventStatus.PROCESSED]
    assert not failed, f"{len(failed)} events not processed, e.g. {failed[:5]}"
    assert sorted(m.provider_message_id for m in inbound) == sorted(burst.wamids)
    # One task per customer, holding that customer's messages (and only theirs).
    customer_of = {m.task_id: burst.wamids[m.provider_message_id] for m in inbound}
    per_task = Counter(m.task_id for m in inbound)
    assert None not in per_task
    assert len(tasks) == BURST_CUSTOMERS == len(set(customer_of.values()))
    assert set(per_task) == set(tasks) and set(per_task.values()) == {PER_CUSTOMER}
    for m in inbound:
        assert customer_of[m.task_id] == burst.wamids[m.provider_message_id]
    assert not timers, f"{timers} reminders or escalations fired"
    # Every delivery done, each sent once: its provider id is one call to a fake.
    assert {row.status for row in outbox} == {OutboxStatus.SENT}, Counter(r.status for r in outbox)
    assert len({row.provider_message_id for row in outbox}) == len(outbox)
    _assert_slack_once(stack.slack, [row for row in outbox if row.channel == "slack"], tasks)
    # One WhatsApp reply per task, to its customer, sent once.
    assert sorted(r.task_id for r in replies) == sorted(tasks)
    whatsapp = [row for row in outbox if row.channel == "whatsapp"]
    assert sorted(row.task_id for row in whatsapp) == sorted(tasks)
    to = Counter(message["to"] for message in stack.graph.sent_messages())
    assert to == Counter(customer_of.values()), _duplicates(to)
    assert {row.channel for row in outbox} == {"slack", "whatsapp"}


def _assert_slack_once(slack: FakeSlack, rows: list, tasks: list[int]) -> None:
    """Each task's card posted once to its agent, each follow-up once; one chat.postMessage
    per outbox row (its ts, the row's provider id)."""
    calls, posted = slack.sent_messages(), slack.posted()
    assert len(calls) == len(rows) == len(posted)
    assert {message["ts"] for _, message in posted} == {row.provider_message_id for row in rows}
    cards = Counter(_task_ref(params, "New task T-") for params in calls)
    follow_ups = Counter(_task_ref(params, "The customer wrote on T-") for params in calls)
    cards.pop(None, None), follow_ups.pop(None, None)
    assert cards == Counter(tasks), _duplicates(cards)
    assert follow_ups == Counter({task: PER_CUSTOMER - 1 for task in tasks}), _duplicates(
        follow_ups)  # fmt: skip
    assert sum(cards.values()) + sum(follow_ups.values()) == len(rows)


def _task_ref(message: dict, prefix: str) -> int | None:
    text = str(message.get("text", ""))
    return int(text.removeprefix(prefix).split(":", 1)[0]) if text.startswith(prefix) else None


def _duplicates(counts: Counter) -> str:
    return f"{sum(1 for n in counts.values() if n > 1)} duplicated, e.g. " + str(
        [(key, n) for key, n in counts.items() if n > 1][:5])


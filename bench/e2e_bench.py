"""End-to-end latency: signed WhatsApp webhooks in, agent notifications out.

Runs `opsbot serve` and two `opsbot worker` processes on the embedded defaults (SQLite; Redis
at 127.0.0.1:6379 when it answers, else an embedded one) against the sandbox APIs, drives an
open-loop load of signed webhooks (20 % of them redeliveries of an earlier one) at each rate
from a separate process (`bench/loadgen.py`; separate so that it does not slow the sandbox
APIs, which run in this one), after a warm-up of WARM_UP messages that is not measured, and
prints the webhook-to-agent-notification latency p50/p99, plus lost and duplicated tasks and
notifications.

    python bench/e2e_bench.py [--rates 100,300] [--seconds 10]
"""

import argparse
import json
import multiprocessing
import random
import socket
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import loadgen  # bench/loadgen.py, beside this script
from sqlalchemy import func, select

from bot.core.bootstrap import configure_keys
from bot.core.settings import Settings
from sandbox.graph import FakeGraph
from sandbox.inbound import whatsapp_message
from sandbox.slack import FakeSlack
from sandbox.stack import (
    PHONE_ID,
    WHATSAPP_SECRET,
    free_port,
    opsbot_command,
    running,
    sandbox_environment,
)
from sandbox.telegram import FakeTelegram
from store.db import Database
from store.models import Message, Task

RULES = """\
version: 1
timezone: UTC
business_hours: {mon-sun: "00:00-24:00"}
sla:
  normal: {first_response: 1h, resolution: 8h, business_hours: false}
escalation: {remind_at: [], unaccepted_after: 1h, on_breach: [notify_supervisor]}
teams:
  sales: {supervisor: ana, strategy: least_loaded}
agents:
  - {id: ana, name: Ana, teams: [sales], slack: U0ANA01, capacity: 1000000}
  - {id: bob, name: Bob, teams: [sales], slack: U0BOB01, capacity: 1000000}
rules:
  - name: everything
    then: {category: sales, team: sales, title: "Consulta — {contact.name}"}
"""

WARM_UP = 20  # messages in one second before each measured run


def load(port: int, rate: int, seconds: float, phones: str) -> tuple[int, dict[str, float]]:
    """Runs in the load generator's process: builds every signed request first (one new
    customer per message, 20 % redeliveries of an earlier body), then sends request i at
    start + i/rate whatever the answers. Returns the non-200 answers and, per wamid, the
    wall-clock time its first delivery was due. Customers' numbers start with `phones`."""
    requests, wamids = [], []
    for i in range(int(rate * seconds)):
        if requests and random.random() < 0.2:
            requests.append(random.choice(requests))  # a redelivery
            wamids.append(None)
            continue
        body = whatsapp_message(wa_id=f"{phones}{i:07d}", name=f"Cliente {i}",
                                phone_id=PHONE_ID,
                                message={"type": "text", "text": {"body": "¿Stock?"}})
        requests.append(loadgen.signed_post(json.dumps(body).encode(),
                                            host=f"127.0.0.1:{port}", secret=WHATSAPP_SECRET))
        wamids.append(body["entry"][0]["changes"][0]["value"]["messages"][0]["id"])
    results, _ = loadgen.run(port, requests, concurrency=64, rate=rate)
    sent = {wamid: result.sent_at for wamid, result in zip(wamids, results, strict=True)
            if wamid}
    return sum(1 for result in results if result.status != 200), sent


def measure(db: Database, slack: FakeSlack, sent: dict[str, float], wait: float, *,
            after_task: int = 0, cards_before: int = 0) -> dict:
    """Latencies and counts (of the tasks after `after_task`) once the notifications stopped
    arriving (or `wait` passed)."""
    deadline, last = time.monotonic() + wait, -1
    while time.monotonic() < deadline:
        count = len(slack.calls("chat.postMessage")) - cards_before
        if count == last and count >= len(sent):
            break
        last = count
        time.sleep(1.0)
    with db.transaction() as session:
        task_of = dict(session.execute(
            select(Message.provider_message_id, Message.task_id)
            .where(Message.provider_message_id.in_(list(sent)))
        ).all())
        tasks = session.scalar(select(func.count(Task.id)).where(Task.id > after_task))
    cards: dict[int, list[float]] = {}
    for record in slack.calls("chat.postMessage"):
        text = str(record.params.get("text", ""))
        if text.startswith("New task T-"):
            number = int(text.removeprefix("New task T-").split(":", 1)[0])
            cards.setdefault(number, []).append(record.at.timestamp())
    latencies = sorted(
        (min(cards[task_of[w]]) - t) * 1000 for w, t in sent.items()
        if task_of.get(w) in cards
    )
    return {
        "messages": len(sent), "tasks": tasks,
        "lost_tasks": sum(1 for w in sent if task_of.get(w) is None),
        "duplicate_tasks": max(0, tasks - len(set(task_of.values()))),
        "lost_notifications": sum(1 for w in sent if task_of.get(w) not in cards),
        "duplicate_notifications": sum(len(v) - 1 for v in cards.values()),
        "p50_ms": _percentile(latencies, 50), "p99_ms": _percentile(latencies, 99),
    }


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


def run_rate(rate: int, seconds: float, redis_url: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="opsbot-bench-") as tmp, FakeGraph() as graph, \
            FakeSlack() as slack, FakeTelegram() as telegram:
        workdir = Path(tmp)
        (workdir / "rules.yaml").write_text(RULES)
        overrides = {"RULES_PATH": "rules.yaml"}
        if redis_url:
            overrides["REDIS_URL"] = redis_url
        env = sandbox_environment(graph, slack, telegram, **overrides)
        port = free_port()
        commands = [opsbot_command("serve", "--port", str(port))]
        commands += [opsbot_command("worker", "--no-migrate")] * 2
        with running(commands[:1], env=env, cwd=workdir,
                     ready_url=f"http://127.0.0.1:{port}/healthz"), \
                running(commands[1:], env=env, cwd=workdir,
                        ready_url=f"http://127.0.0.1:{port}/readyz"):
            url = f"sqlite:///{workdir / 'var' / 'opsbot.db'}"
            configure_keys(Settings(database_url=url))  # the keys `opsbot serve` made
            db = Database(url)
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(1, mp_context=spawn) as generator:
                # Warm-up, not measured: the first messages pay for connections and caches.
                _, warm = generator.submit(load, port, WARM_UP, 1.0, "34999").result()
                measure(db, slack, warm, wait=30)
                with db.transaction(readonly=True) as session:
                    warmed = session.scalar(select(func.max(Task.id))) or 0
                cards = len(slack.calls("chat.postMessage"))
                failures, sent = generator.submit(load, port, rate, seconds,
                                                  f"34{rate:03d}").result()
            result = measure(db, slack, sent, wait=60, after_task=warmed, cards_before=cards)
            db.dispose()
        return {"rate": rate, "non_200": failures, **result}


def _local_redis() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            pass
    except OSError:
        return None
    import redis

    redis.Redis(db=8).flushdb()
    return "redis://127.0.0.1:6379/8"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,300")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"e2e_bench: SQLite, Redis {_local_redis() or 'embedded'}, 1 web + 2 workers, "
          f"{args.seconds:.0f} s per rate, 20 % redeliveries, open loop from its own process "
          "(bench/loadgen.py: raw HTTP/1.1, keep-alive)")
    for rate in (int(r) for r in args.rates.split(",")):
        r = run_rate(rate, args.seconds, _local_redis())  # a flushed Redis for each rate
        print(f"{r['rate']:>4} msg/s: webhook→agent notification p50 {r['p50_ms']:.0f} ms, "
              f"p99 {r['p99_ms']:.0f} ms | messages {r['messages']}, tasks {r['tasks']}, "
              f"lost tasks {r['lost_tasks']}, duplicate tasks {r['duplicate_tasks']}, "
              f"lost notifications {r['lost_notifications']}, duplicate notifications "
              f"{r['duplicate_notifications']}, non-200 answers {r['non_200']}")


if __name__ == "__main__":
    main()

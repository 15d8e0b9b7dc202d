"""End-to-end: signed WhatsApp webhooks in, agent notifications out, through web and worker
processes (bench/deployment.py: SQLite or PostgreSQL, Redis at 127.0.0.1:6379 when it answers,
else the embedded one; the sandbox APIs run in this process).

Latency (--rates): an open-loop load of signed webhooks (20 % of them redeliveries of an
earlier one) at each rate from a separate process (`bench/loadgen.py`; separate so that it
does not slow the sandbox APIs), after a warm-up of WARM_UP messages that is not measured;
prints the webhook-to-agent-notification latency p50/p99, plus lost and duplicated tasks and
notifications.

Saturation (--saturate N): N webhooks (the same mix) sent as fast as 64 connections go; prints
the new customers' messages per second from the first webhook to the last card, and the CPU
time all opsbot processes spent per message (user + system, the kernel's accounting). With
--workers 1,2,4 each count runs in turn: on a machine with fewer cores than processes the
messages/s flatten, but the messages per CPU-second show whether workers scale (they stay
flat when nothing serialises).

With --api-delay MS the Slack and Graph fakes answer every call that much later, as the real
APIs do from afar (0.1-0.3 s): the latency then shows how the workers wait for them.

    python bench/e2e_bench.py [--database sqlite|postgresql] [--web 1] [--workers 2]
                              [--rates 100,300] [--seconds 10] [--saturate 2000]
                              [--api-delay 100]
"""

import argparse
import json
import multiprocessing
import random
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

import loadgen  # bench/loadgen.py, beside this script
from deployment import Deployment, deploy, reference_ms
from sqlalchemy import func, select

from sandbox.inbound import whatsapp_message
from sandbox.slack import FakeSlack
from sandbox.stack import PHONE_ID, WHATSAPP_SECRET
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


def load(ports: list[int], rate: int | None, count: int,
         phones: str) -> tuple[int, dict[str, float]]:
    """Runs in the load generator's process: builds `count` signed requests first (one new
    customer per message, 20 % redeliveries of an earlier body), then sends request i at
    start + i/rate whatever the answers (open loop), or as fast as they go with `rate` None.
    Returns the non-200 answers and, per wamid, the wall-clock time its first delivery was
    due (or sent). Customers' numbers start with `phones`."""
    requests, wamids = [], []
    for i in range(count):
        if requests and random.random() < 0.2:
            requests.append(random.choice(requests))  # a redelivery
            wamids.append(None)
            continue
        body = whatsapp_message(wa_id=f"{phones}{i:07d}", name=f"Cliente {i}",
                                phone_id=PHONE_ID,
                                message={"type": "text", "text": {"body": "¿Stock?"}})
        requests.append(loadgen.signed_post(json.dumps(body).encode(), host="127.0.0.1",
                                            secret=WHATSAPP_SECRET))
        wamids.append(body["entry"][0]["changes"][0]["value"]["messages"][0]["id"])
    results, _ = loadgen.run(ports, requests, concurrency=64, rate=rate)
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


@contextmanager
def warmed(args: argparse.Namespace, workers: int) -> Iterator[tuple[Deployment, int, int]]:
    """A deployment after a warm-up that is not measured (the first messages pay for
    connections and caches), with the last task id and the cards posted so far."""
    with deploy(RULES, database=args.database, web=args.web, workers=workers) as deployment, \
            _generator() as generator:
        _, warm = generator.submit(load, deployment.ports, WARM_UP, WARM_UP, "34999").result()
        measure(deployment.db, deployment.slack, warm, wait=30)
        with deployment.db.transaction(readonly=True) as session:
            warmed_up = session.scalar(select(func.max(Task.id))) or 0
        yield deployment, warmed_up, len(deployment.slack.calls("chat.postMessage"))


@contextmanager
def _generator() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def run_rate(args: argparse.Namespace, workers: int, rate: int) -> dict:
    with warmed(args, workers) as (deployment, warmed_up, cards), _generator() as generator:
        deployment.slack.delay = deployment.graph.delay = args.api_delay / 1000
        failures, sent = generator.submit(load, deployment.ports, rate,
                                          int(rate * args.seconds), f"34{rate:03d}").result()
        result = measure(deployment.db, deployment.slack, sent, wait=60, after_task=warmed_up,
                         cards_before=cards)
    return {"rate": rate, "non_200": failures, **result}


def run_saturation(args: argparse.Namespace, workers: int) -> dict:
    """The burst's messages/s from its first webhook to its last card, and the CPU time per
    message of every opsbot process over that span."""
    with warmed(args, workers) as (deployment, warmed_up, cards), _generator() as generator:
        before, stages_before, began = deployment.cpu(), deployment.stages(), time.time()
        failures, sent = generator.submit(load, deployment.ports, None, args.saturate,
                                          "34888").result()
        result = measure(deployment.db, deployment.slack, sent, wait=300,
                         after_task=warmed_up, cards_before=cards)
        after, stages = deployment.cpu(), deployment.stages()
        cpu = sum(after.values()) - sum(before.values())
        split = {"web": after["web"] - before["web"],
                 **{name: stages.get(name, 0.0) - stages_before.get(name, 0.0)
                    for name in ("processing", "delivery", "timers")}}
        last_card = max(r.at.timestamp() for r in deployment.slack.calls("chat.postMessage"))
    seconds = last_card - began
    return {"non_200": failures, **result, "per_second": result["messages"] / seconds,
            "cpu_ms": cpu / result["messages"] * 1000, "per_cpu_second": result["messages"] / cpu,
            "split": ", ".join(f"{name} {seconds / result['messages'] * 1000:.1f}"
                               for name, seconds in split.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--web", type=int, default=1, help="web processes")
    parser.add_argument("--workers", default="2", help="worker processes, or a list: 1,2,4")
    parser.add_argument("--rates", default="100,300", help="open-loop rates; '' for none")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--api-delay", type=float, default=0.0, metavar="MS",
                        help="the Slack and Graph fakes answer each call this much later, "
                             "as the real APIs do from afar (the rate runs)")
    parser.add_argument("--saturate", type=int, default=0,
                        help="webhooks in a closed-loop burst (0: no saturation run)")
    args = parser.parse_args()
    print(f"e2e_bench: {args.database}, {args.web} web + {args.workers} workers, 20 % "
          "redeliveries, every message a new customer, from its own process "
          "(bench/loadgen.py: raw HTTP/1.1, keep-alive); this machine's reference workload: "
          f"{reference_ms():.0f} ms CPU"
          + (f"; the fake APIs answer {args.api_delay:.0f} ms late" if args.api_delay else ""))
    for workers in (int(w) for w in args.workers.split(",")):
        for rate in (int(r) for r in args.rates.split(",") if r):
            r = run_rate(args, workers, rate)  # a fresh database and Redis for each run
            print(f"{workers} workers, {r['rate']:>4} msg/s for {args.seconds:.0f} s: "
                  f"webhook→agent notification p50 {r['p50_ms']:.0f} ms, p99 "
                  f"{r['p99_ms']:.0f} ms | {_counts(r)}")
        if args.saturate:
            r = run_saturation(args, workers)
            print(f"{workers} workers, saturation: {r['per_second']:.0f} messages/s, "
                  f"{r['cpu_ms']:.1f} ms CPU per message ({r['per_cpu_second']:.0f} messages "
                  f"per CPU-second; ms of it in {r['split']}) | {_counts(r)}")


def _counts(r: dict) -> str:
    return (f"messages {r['messages']}, tasks {r['tasks']}, lost tasks {r['lost_tasks']}, "
            f"duplicate tasks {r['duplicate_tasks']}, lost notifications "
            f"{r['lost_notifications']}, duplicate notifications "
            f"{r['duplicate_notifications']}, non-200 answers {r['non_200']}")


if __name__ == "__main__":
    main()

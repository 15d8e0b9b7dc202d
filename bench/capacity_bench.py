"""Capacity: the CPU time opsbot spends per customer message, all processes, by stage.

A fixed scenario runs through `opsbot serve` and `opsbot worker` processes (bench/deployment.py)
against the sandbox APIs: an open-loop load of signed WhatsApp webhooks at --rate for
--seconds from its own process (bench/loadgen.py), of which 20 % are redeliveries of an
earlier webhook and, of the others, 60 % come from a new customer (a new task, routed, a card
to an agent) and 40 % from a customer already seen (a follow-up on the open task). Agents act
from Slack as the cards arrive: 80 % of the tasks are accepted (`/ops accept`), half of those
also answered (`/ops reply`, a WhatsApp message out). The tasks nobody accepts get a reminder
at half their 8-second first-response deadline and a supervisor alert at the breach.

The figure is each process's CPU time (user + system) from the kernel's accounting over the
run, until the last breach has fired and nothing is left to send, divided by the customer
messages stored. The web processes' time is intake (webhooks and the agents' commands); the
workers split theirs themselves (`bot.worker.cpu`): processing, delivery, timers (with RQ's
scheduler process), and what RQ's job handling and the keepers cost. The CPU the idle
processes spend over as long a time (heartbeats, the scheduler's ticks) is measured first
and shown apart. Unlike latency, this figure hardly depends on what else the machine does.
It also prints the run's mix per customer message (webhooks, agents' commands, rows inserted,
calls to the remote APIs), from which bench/floor_bench.py computes the least CPU the same
scenario could take with opsbot's libraries.

    python bench/capacity_bench.py [--database sqlite|postgresql] [--workers 2] [--web 1]
                                   [--rate 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import loadgen  # bench/loadgen.py, beside this script
from deployment import Deployment, deploy, reference_ms
from sqlalchemy import func, select

from sandbox.inbound import Sender, slack_command, whatsapp_message
from sandbox.stack import PHONE_ID, WHATSAPP_SECRET, sandbox_sender
from store.models import Base, Message, OutboxMessage, OutboxStatus, Task

FIRST_RESPONSE = 8.0  # seconds; a reminder at half, a supervisor alert at the breach
AGENTS = {"ana": "U0ANA01", "bob": "U0BOB01"}
RULES = f"""\
version: 1
timezone: UTC
business_hours: {{mon-sun: "00:00-24:00"}}
sla:
  normal: {{first_response: {FIRST_RESPONSE:.0f}s, resolution: 8h, business_hours: false}}
escalation: {{remind_at: [50%], unaccepted_after: 1h, on_breach: [notify_supervisor]}}
teams:
  sales: {{supervisor: ana, strategy: least_loaded}}
agents:
  - {{id: ana, name: Ana, teams: [sales], slack: {AGENTS["ana"]}, capacity: 1000000}}
  - {{id: bob, name: Bob, teams: [sales], slack: {AGENTS["bob"]}, capacity: 1000000}}
rules:
  - name: everything
    then: {{category: sales, team: sales, title: "Consulta — {{contact.name}}"}}
"""
NEW_CARD = "New task T-"


def load(ports: list[int], rate: int, seconds: float, tag: str) -> dict:
    """In the load generator's process: builds the signed webhooks, then sends webhook i at
    start + i/rate whatever the answers. Returns the counts of the mix and the non-200s."""
    rng = random.Random(tag)
    requests: list[bytes] = []
    customers: list[str] = []
    counts = {"webhooks": 0, "new": 0, "follow_ups": 0, "redeliveries": 0}
    for i in range(int(rate * seconds)):
        if requests and rng.random() < 0.2:
            requests.append(rng.choice(requests))
            counts["redeliveries"] += 1
            continue
        if customers and rng.random() < 0.4:
            wa_id, text = rng.choice(customers), "¿Alguna novedad con mi pedido?"
            counts["follow_ups"] += 1
        else:
            wa_id, text = f"34{tag}{i:06d}", "Hola, ¿tenéis stock de la talla M?"
            customers.append(wa_id)
            counts["new"] += 1
        body = whatsapp_message(wa_id=wa_id, name=f"Cliente {wa_id[-4:]}", phone_id=PHONE_ID,
                                wamid=f"wamid.CAP{tag}{i:07d}",
                                message={"type": "text", "text": {"body": text}})
        requests.append(loadgen.signed_post(json.dumps(body).encode(), host="127.0.0.1",
                                            secret=WHATSAPP_SECRET))
    results, _ = loadgen.run(ports, requests, concurrency=32, rate=rate)
    counts["webhooks"] = len(requests)
    counts["non_200"] = sum(1 for result in results if result.status != 200)
    return counts


@dataclass
class Agents:
    """Agents answering their cards from Slack: accept 80 %, and reply to half of those."""

    deployment: Deployment
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    seen: int = 0
    commands: int = 0
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4))
    futures: list = field(default_factory=list)

    def act(self) -> None:
        """Acts on the cards that arrived since the last call."""
        calls = self.deployment.slack.calls("chat.postMessage")
        channels = {self.deployment.slack.dm_channel(user): user for user in AGENTS.values()}
        for record in calls[self.seen:]:
            text, user = str(record.params.get("text", "")), channels.get(
                str(record.params.get("channel")))
            if not text.startswith(NEW_CARD) or user is None or self.rng.random() >= 0.8:
                continue
            number = text.removeprefix(NEW_CARD).split(":", 1)[0]
            verbs = [f"accept {number}"]
            if self.rng.random() < 0.5:
                verbs.append(f"reply {number} Sí, la tenemos: te la reservo hoy.")
            self.futures.append(self.pool.submit(self._command, user, verbs, int(number)))
            self.commands += len(verbs)
        self.seen = len(calls)

    def finish(self) -> None:
        for future in self.futures:
            future.result()
        self.pool.shutdown()

    @cached_property
    def senders(self) -> list[Sender]:
        """One per web process, shared by the agents' threads (keep-alive connections)."""
        return [sandbox_sender(port) for port in self.deployment.ports]

    def _command(self, user: str, verbs: list[str], number: int) -> None:
        sender = self.senders[number % len(self.senders)]
        for verb in verbs:
            answer = sender.slack_form(slack_command(
                user_id=user, text=verb, response_url=self.deployment.slack.response_url()))
            answer.raise_for_status()


def run(args: argparse.Namespace) -> None:
    inbound = select(func.count(Message.id)).where(Message.direction == "inbound")
    with deploy(RULES, database=args.database, web=args.web, workers=args.workers) as deployment:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=spawn) as generator:
            warm = generator.submit(load, deployment.ports, 20, 1.0, "9").result()  # warm-up
            _quiet(deployment, expected_cards=warm["new"],
                   not_before=time.monotonic() + FIRST_RESPONSE + 2)
            idle_from, idle_began = _totals(deployment), time.monotonic()
            time.sleep(args.idle)
            idle = _per_second(idle_from, _totals(deployment), time.monotonic() - idle_began)
            with deployment.db.transaction(readonly=True) as session:
                tasks_before = session.scalar(select(func.max(Task.id))) or 0
                messages_before = session.scalar(inbound)
            began_totals, began = _totals(deployment), time.monotonic()
            calls_before, rows_before = _api_calls(deployment), _rows(deployment)
            agents = Agents(deployment)
            agents.seen = len(deployment.slack.calls("chat.postMessage"))
            sent = generator.submit(load, deployment.ports, args.rate, args.seconds, "7")
            while not sent.done():
                agents.act()
                time.sleep(0.2)
            counts = sent.result()
        _quiet(deployment, expected_cards=counts["new"],
               not_before=time.monotonic() + FIRST_RESPONSE + 2, agents=agents)
        agents.finish()
        window = time.monotonic() - began
        used = _difference(began_totals, _totals(deployment))
        calls = _difference(calls_before, _api_calls(deployment))
        rows = _difference(rows_before, _rows(deployment))
        with deployment.db.transaction(readonly=True) as session:
            tasks = session.scalar(select(func.count(Task.id)).where(Task.id > tasks_before))
            messages = session.scalar(inbound) - messages_before
    _report(args, counts, tasks=tasks, messages=messages, commands=agents.commands,
            calls=calls, inserted=rows, used=used, idle=idle, window=window)


def _api_calls(deployment: Deployment) -> dict[str, float]:
    """The calls the remote APIs' fakes have received so far (the Slack fake also counts the
    answers posted to commands' response URLs)."""
    return {"slack": len(deployment.slack.requests), "graph": len(deployment.graph.requests)}


def _rows(deployment: Deployment) -> dict[str, float]:
    """The rows of each table of opsbot's."""
    with deployment.db.transaction(readonly=True) as session:
        return {table.name: session.scalar(select(func.count()).select_from(table))
                for table in Base.metadata.sorted_tables}


def _totals(deployment: Deployment) -> dict[str, float]:
    return {**deployment.cpu(), **{f"stage:{k}": v for k, v in deployment.stages().items()}}


def _difference(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}


def _per_second(before: dict[str, float], after: dict[str, float],
                seconds: float) -> dict[str, float]:
    return {key: value / seconds for key, value in _difference(before, after).items()}


def _quiet(deployment: Deployment, *, expected_cards: int, not_before: float,
           agents: Agents | None = None, timeout: float = 300) -> None:
    """Until the new-task cards have all come, `not_before` has passed, the agents' commands
    are answered and nothing waits in the outbox or the queue."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if agents is not None:
            agents.act()
        cards = sum(1 for r in deployment.slack.calls("chat.postMessage")
                    if str(r.params.get("text", "")).startswith(NEW_CARD))
        waiting = _waiting(deployment)
        if cards >= expected_cards and time.monotonic() >= not_before and not any(waiting) \
                and (agents is None or all(f.done() for f in agents.futures)):
            return
        time.sleep(0.5)
    raise SystemExit(f"capacity_bench: not done within {timeout} s: {cards} of "
                     f"{expected_cards} cards; outbox rows pending and jobs queued: {waiting}")


def _waiting(deployment: Deployment) -> tuple[int, int]:
    """Outbox rows pending, and jobs in the queue."""
    with deployment.db.transaction(readonly=True) as session:
        pending = session.scalar(select(func.count(OutboxMessage.id)).where(
            OutboxMessage.status == OutboxStatus.PENDING))
    queued = deployment.redis.llen("rq:queue:opsbot") if deployment.redis is not None else 0
    return pending, queued


def _report(args, counts: dict, *, tasks: int, messages: int, commands: int,
            calls: dict[str, float], inserted: dict[str, float], used: dict[str, float],
            idle: dict[str, float], window: float) -> None:
    stage = {k.removeprefix("stage:"): v for k, v in used.items() if k.startswith("stage:")}
    claimed = sum(stage.get(name, 0.0) for name in ("processing", "delivery", "timers",
                                                    "webhooks", "upkeep"))
    rows = [
        ("intake (web: webhooks, agents' commands)", used["web"]),
        ("processing (drains: apply, route, queue)", stage.get("processing", 0.0)),
        ("delivery (cards, WhatsApp replies)", stage.get("delivery", 0.0)),
        ("timers (schedule, fire, RQ scheduler)", stage.get("timers", 0.0) + used["scheduler"]),
        ("jobs (RQ's job handling, drain requests)", used["workers"] - claimed),
        ("upkeep (heartbeats, sweeper)", stage.get("upkeep", 0.0)),
    ]
    total = sum(seconds for _, seconds in rows)
    idle_total = sum(v for k, v in idle.items() if not k.startswith("stage:")) * window
    print(f"capacity_bench: {args.database}, {args.web} web + {args.workers} workers, "
          f"{args.rate} webhooks/s for {args.seconds:.0f} s: {counts['webhooks']} webhooks "
          f"({counts['new']} new customers, {counts['follow_ups']} follow-ups, "
          f"{counts['redeliveries']} redeliveries, {counts['non_200']} non-200), "
          f"{messages} customer messages stored, {tasks} tasks, {commands} agent commands, "
          f"{calls['slack']:.0f} Slack and {calls['graph']:.0f} Graph API calls; "
          f"{window:.1f} s until all was done; this machine's reference workload: "
          f"{reference_ms():.0f} ms CPU")
    for name, seconds in rows:
        print(f"  {name:<44} {seconds:7.2f} s CPU  {seconds / messages * 1000:6.2f} ms/message")
    print(f"  {'all stages':<44} {total:7.2f} s CPU  {total / messages * 1000:6.2f} ms/message"
          f"  (of which idle processes over {window:.0f} s: {idle_total:.2f} s, "
          f"{idle_total / messages * 1000:.2f} ms/message)")
    mix = {"webhooks": counts["webhooks"], "commands": commands,  # the webhooks' own rows
           "rows": sum(inserted.values()) - inserted["inbound_events"],  # go with them
           "slack_calls": calls["slack"], "graph_calls": calls["graph"]}
    print("  the mix, per customer message, for floor_bench.py: --mix "
          + ",".join(f"{name}={count / messages:.2f}" for name, count in mix.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--web", type=int, default=1)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--idle", type=float, default=5.0,
                        help="seconds of idle processes measured before the run")
    run(parser.parse_args())


if __name__ == "__main__":
    main()

"""`opsbot rules replay` at scale: 100,000 recorded decisions replayed under a candidate that
changes one rule, timed as the command runs it (the read, the opening of the sealed texts,
the evaluation, deadlines and routing of each, the summary).

    .venv/bin/python bench/replay_bench.py [--decisions 100000] [--database sqlite|postgresql]

Fills a fresh database (a temporary SQLite file by default; `postgresql`: a scratch database
beside OPSBOT_BENCH_POSTGRES_URL, as api_bench does) with 1,000 customers sealed as opsbot
seals them and --decisions inbound messages over the last 30 days, each with its recorded
decision under the project's rules.yaml (85% created a task, routed by a snapshot of the
agents' states; 10% ignored; 5% reopened; 2% of the customers erased). The recorded outcomes
are what rules.yaml itself gives on those facts. The candidate raises `fault-report` from high
to urgent. Target: <= 30 s for 100,000.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import api_bench  # noqa: E402 - bench/ is this script's folder

from bot.usecases.replay import replay_rules  # noqa: E402
from rules import ContactFacts, HistoryFacts, MessageFacts, RulesConfig, parse_rules  # noqa: E402
from rules.recording import record_agents, record_facts  # noqa: E402
from rules.replay import RecordedDecision, replay_decision  # noqa: E402
from rules.routing import AgentState  # noqa: E402
from store import crypto, keys  # noqa: E402
from store.db import Database, upgrade_database  # noqa: E402
from store.models import Contact, Message, RuleDecision, Task  # noqa: E402

BATCH = 5000
DAYS = 30
ERASED = 0.02  # share of customers erased
TEXTS = (
    "Hola, ¿tenéis disponible el modelo X200 en negro?",
    "Mi pedido 4411 no ha llegado y la dirección de envío está mal",
    "La lavadora no enciende desde ayer, creo que está averiada",
    "Quiero cambiar la entrega al viernes por la tarde",
    "Do you have the blue one in stock? https://shop.example/p/200",
    "My parcel never arrived, tracking says delivered",
    "¿A qué hora abrís mañana?",
    "Necesito la factura de la compra del 12/11, mi correo es ana@example.com",
    "The app shows an error when I pay",
    "Buenas, una consulta sobre la garantía",
)
IGNORED_TEXTS = ("Muchas gracias", "ok vale", "👍", "Perfecto, gracias!")
AGENTS = ("lucia", "pablo", "javier", "elena", "ana", "marta", "tom")


@contextmanager
def bench_database(kind: str) -> Iterator[str]:
    """A fresh, migrated database: a temporary SQLite file, or a PostgreSQL scratch one."""
    if kind == "postgresql":
        with api_bench.scratch_database() as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'replay.db'}"
        upgrade_database(url)
        yield url


def fill(db: Database, config: RulesConfig, count: int, now: datetime) -> None:
    """`count` messages with their recorded decisions (module docstring)."""
    rng = random.Random(19)
    key_ids = api_bench.fill_contacts(db, now)
    step = timedelta(days=DAYS) / count
    last_agents: dict[int, str | None] = {}  # customer -> agent of their latest task
    for start in range(0, count, BATCH):
        rows = [_row(rng, config, n, now - timedelta(days=DAYS) + n * step, key_ids,
                     last_agents) for n in range(start, min(start + BATCH, count))]
        with db.transaction() as session:  # ids are given: a fresh database numbers from 1
            session.execute(insert(Task), [row["task"] for row in rows if row["task"]])
            session.execute(insert(Message), [row["message"] for row in rows])
            session.execute(insert(RuleDecision), [row["decision"] for row in rows])
    _erase_some(db, rng)
    with db.engine.begin() as connection:
        connection.execute(text("ANALYZE"))


def _row(rng: random.Random, config: RulesConfig, n: int, at: datetime, key_ids: list[str],
         last_agents: dict[int, str | None]) -> dict:
    contact = n % api_bench.CONTACTS + 1
    roll = rng.random()
    effect = "ignored" if roll < 0.10 else "reopened" if roll < 0.15 else "created"
    words = rng.choice(IGNORED_TEXTS if effect == "ignored" else TEXTS)
    status = "vip" if contact % 20 == 0 else "customer"
    facts = record_facts(MessageFacts(text=words), ContactFacts(status=status),
                         HistoryFacts(task_count=n // api_bench.CONTACTS, days_since_last_contact=
                                      rng.uniform(0, 90) if n >= api_bench.CONTACTS else None),
                         language="es")
    agents = _agents(rng, at) if effect == "created" else None
    recorded = RecordedDecision(id=n + 1, at=at, effect=effect, facts=facts, outcome={},
                                agents=agents, text=words, tags=[],
                                last_agent=last_agents.get(contact))
    outcome = replay_decision(config, recorded).new  # what the recorded rules decided
    task = _task(n, contact, at, outcome, key_ids) if effect == "created" else None
    if task is not None and task["assignee_id"]:
        last_agents[contact] = task["assignee_id"]
    return {"task": task, "decision": {
        "id": n + 1, "message_id": n + 1, "contact_id": contact,
        "task_id": n + 1 if task else None, "at": at, "rules_sha256": config.sha256,
        "effect": effect, "facts": facts, "contact_tags": [], "outcome": outcome,
        "agents": agents}, "message": {
        "id": n + 1, "direction": "inbound", "contact_id": contact,
        "task_id": n + 1 if task else None, "type": "text",
        "text": crypto.personal(words, key_ids[contact - 1]), "payload": {},
        "sent_at": at, "created_at": at}}


def _agents(rng: random.Random, at: datetime) -> dict:
    return record_agents({agent: AgentState(agent, away=rng.random() < 0.1,
                                            open_tasks=rng.randint(0, 6),
                                            last_assigned_at=at - timedelta(minutes=rng.randint(
                                                1, 600)))
                          for agent in AGENTS})


def _task(n: int, contact: int, at: datetime, outcome: dict, key_ids: list[str]) -> dict:
    return {"id": n + 1, "title": crypto.personal(f"Pedido {n}", key_ids[contact - 1]),
            "category": outcome["category"], "priority": outcome["priority"],
            "status": "closed", "tags": outcome["tags"], "skills": outcome["skills"],
            "declined_by": [], "channel": "whatsapp", "contact_id": contact,
            "team": outcome["team"], "assignee_id": outcome["agent"], "version": 1,
            "timer_generation": 0, "created_at": at, "updated_at": at}


def _erase_some(db: Database, rng: random.Random) -> None:
    """What store.gdpr.erase_contact does to the rows replay reads."""
    erased = rng.sample(range(1, api_bench.CONTACTS + 1), int(api_bench.CONTACTS * ERASED))
    with db.transaction() as session:
        session.execute(update(Message).where(Message.contact_id.in_(erased))
                        .values(text=None, payload={}))
        session.execute(update(RuleDecision).where(RuleDecision.contact_id.in_(erased))
                        .values(contact_tags=None))
        session.execute(update(Contact).where(Contact.id.in_(erased)).values(tags=[]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes, as `opsbot rules replay --workers` (default: CPUs)")
    args = parser.parse_args()
    base_text = (ROOT / "rules.yaml").read_text(encoding="utf-8")
    base = parse_rules(base_text, "rules.yaml")
    marker = "      priority: high\n      sla: fault"
    assert marker in base_text, "rules.yaml's fault-report changed: update the candidate"
    candidate = parse_rules(base_text.replace(marker, "      priority: urgent\n      sla: fault"),
                            "candidate.yaml")
    keys.configure(keys.parse_keys(keys.new_master_entry(), keys.new_key()))  # this run's keys
    now = datetime.now(UTC)
    with bench_database(args.database) as url:
        db = Database(url)
        started = time.perf_counter()
        fill(db, base, args.decisions, now)
        print(f"filled {args.decisions:,} decisions ({args.database}) in "
              f"{time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        found = replay_rules(db, candidate, since=now - timedelta(days=DAYS + 1), until=now,
                             keep=200, workers=args.workers)
        seconds = time.perf_counter() - started
        db.dispose()
    summary = found.summary
    print(f"replayed {summary.replayed:,} decisions in {seconds:.2f} s with {args.workers} "
          f"worker(s) "
          f"({summary.replayed / seconds:,.0f} decisions/s); changed {summary.changed:,}, "
          f"not replayable {summary.not_replayable:,}; fields "
          f"{ {k: v for k, v in summary.fields.items() if v} }")
    print(f"target <= 30 s for 100,000: {'met' if seconds <= 30 else 'MISSED'}")


if __name__ == "__main__":
    main()

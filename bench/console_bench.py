"""The web console's read side at scale: server time of each page, its store call alone and
the whole HTTP request.

    .venv/bin/python bench/console_bench.py [--database URL] [--tasks 100000] [--reps 200]
                                            [--compare-indexes] [--no-http]

Fills a fresh database with --tasks tasks created over the last 365 days (a few thousand
open: the last days' and a few stragglers), ten audit events per task (1,000,000 for the
default), two messages per task and ratings, sealed as opsbot seals them; then times, inside
`Database.transaction(readonly=True)` as a request would, p50/p95 over --reps calls of each
page: the board (an admin with no filters; the supervisor of one team), a task page, the KPIs
of the last 30 days and their CSV. Target: p95 <= 150 ms each.

--database: a PostgreSQL server (default OPSBOT_BENCH_POSTGRES_URL or 127.0.0.1/test: a
database `opsbot_bench_<random>` is created beside it and dropped at the end, as api_bench
does) or `sqlite` (a temporary file). --compare-indexes times the pages again without the
indexes of migration 0011.

Each page is a `Page`: a name and a call that does one request's work. The web layer's
timing swaps the store calls for HTTP requests to the app `bot.app.create_app` builds
(fastapi.testclient, in this process: the server time without a network), signed in as an
admin and as the supervisor by sessions opened in the database; its Redis is REDIS_URL or
redis://127.0.0.1:6379/15 and its rules the project's rules.yaml (timezone Europe/Madrid).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import api_bench  # noqa: E402 - bench/ is this script's folder
from api_bench import CONTACTS, OPEN  # noqa: E402

from bot.app import create_app  # noqa: E402
from bot.core.bootstrap import build_services, configure_keys  # noqa: E402
from bot.core.settings import Settings  # noqa: E402
from store import crypto, keys  # noqa: E402
from store.board import BoardFilters, list_board, load_task_page  # noqa: E402
from store.db import Database, upgrade_database  # noqa: E402
from store.events import rating_of, task_fact  # noqa: E402
from store.kpis import KpiFilters, compute_kpis, kpi_csv_rows, period_from  # noqa: E402
from store.lifecycle import Actor, ActorKind  # noqa: E402
from store.models import Message, Task, TaskEvent  # noqa: E402
from store.users import add_user, open_session  # noqa: E402

TEAMS = ("logistics", "sales", "support", "billing")
AGENTS = {team: [f"{team[:3]}{n}" for n in range(3)] for team in TEAMS}
CATEGORIES = ("operations", "sales", "support", "billing", "returns")
PRIORITIES = ("low", "normal", "high")
DAYS = 365
OPEN_DAYS = 3  # tasks of the last days are still open…
STRAGGLERS = 0.02  # … and this share of older ones
EVENTS_PER_TASK = 10
BATCH = 5000
TZ = "Europe/Madrid"
CONSOLE_INDEXES = ("ix_tasks_created_at", "ix_tasks_resolved_at")  # migration 0011
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
SUPERVISED = TEAMS[0]  # the supervisor's team
TASK_FACTS = ("auto_routed_at", "manual_step_at", "first_accepted_at", "last_rated_at",
              "last_rating")  # migration 0012


@dataclass(frozen=True)
class Page:
    name: str
    call: Callable[[], object]  # one request's work


@contextmanager
def bench_database(url: str) -> Iterator[str]:
    """A fresh, migrated database: beside the PostgreSQL server `url`, or a SQLite file."""
    if url == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            path = f"sqlite:///{Path(folder) / 'console.db'}"
            upgrade_database(path)
            yield path
        return
    with api_bench.scratch_database(url) as scratch:
        yield scratch


def fill(db: Database, count: int, now: datetime) -> None:
    """CONTACTS customers, then `count` tasks with their messages and audit events."""
    rng = random.Random(7)
    key_ids = api_bench.fill_contacts(db, now)
    step = timedelta(days=DAYS) / count
    for start in range(0, count, BATCH):
        tasks = [_task(rng, n, now - DAYS * timedelta(days=1) + n * step, now, key_ids)
                 for n in range(start, min(start + BATCH, count))]
        numbered = list(enumerate(tasks, start + 1))  # a fresh database numbers them so
        messages = [row for n, task in numbered for row in _messages(n, task, key_ids)]
        events = [row for n, task in numbered for row in _with_facts(task, _events(rng, n, task))]
        with db.transaction() as session:  # Core inserts: one multi-row INSERT per batch
            for table, rows in ((Task, tasks), (Message, messages), (TaskEvent, events)):
                session.execute(table.__table__.insert(), rows)
    with db.engine.begin() as connection:
        connection.execute(text("ANALYZE"))  # the planner sees the filled tables


def _task(rng: random.Random, n: int, created: datetime, now: datetime,
          key_ids: list[str]) -> dict:
    team = TEAMS[n % len(TEAMS)]
    contact = n % CONTACTS + 1
    is_open = created > now - timedelta(days=OPEN_DAYS) or rng.random() < STRAGGLERS
    status = rng.choice(OPEN) if is_open else "closed"
    answered = status not in ("new", "assigned") or not is_open
    first_response = created + timedelta(minutes=rng.expovariate(1 / 40))
    resolved = created + timedelta(hours=rng.uniform(1, 30))
    return {
        "title": crypto.personal(f"Pedido {n}: ¿dónde está?", key_ids[contact - 1]),
        "category": CATEGORIES[n % len(CATEGORIES)], "priority": PRIORITIES[n % 3],
        "status": status, "tags": [], "skills": [], "declined_by": [], "channel": "whatsapp",
        "contact_id": contact, "team": team, "version": 1, "timer_generation": 0,
        "assignee_id": None if status == "new" else rng.choice(AGENTS[team]),
        "first_response_due": created + timedelta(hours=1),
        "resolution_due": created + timedelta(hours=24),
        "first_response_at": first_response if answered else None,
        "resolved_at": None if is_open else resolved, "closed_at": None if is_open else resolved,
        "rating": rng.randint(1, 5) if not is_open and rng.random() < 0.3 else None,
        "created_at": created, "updated_at": resolved if not is_open else created,
        **dict.fromkeys(TASK_FACTS)}  # set by _with_facts


def _messages(task_id: int, task: dict, key_ids: list[str]) -> list[dict]:
    key_id = key_ids[task["contact_id"] - 1]
    question = {"direction": "inbound", "text": crypto.personal("¿Dónde está mi pedido?",
                                                                 key_id),
                "sent_at": task["created_at"]}
    answer = {"direction": "outbound", "text": crypto.personal("Lo miramos ahora", key_id),
              "sent_at": task["first_response_at"] or task["created_at"]}
    return [{**message, "task_id": task_id, "contact_id": task["contact_id"], "type": "text",
             "payload": {}, "created_at": message["sent_at"]} for message in (question, answer)]


def _events(rng: random.Random, task_id: int, task: dict) -> list[dict]:
    """EVENTS_PER_TASK events: creation, routing, the moves and the customer's messages."""
    at, agent = task["created_at"], task["assignee_id"] or "nobody"
    routing = {"agent": agent, "team": task["team"], "summary": "least loaded",
               "automatic": True, "candidates": [
                   {"agent": other, "chosen": other == agent, "reason": "0 open of 5"}
                   for other in AGENTS[task["team"]]]}
    steps = [("created", None, "new", {}), ("routed", None, None, routing),
             ("assign", "new", "assigned", {"assignee": agent}),
             ("accept", "assigned", "accepted", {}), ("reply", None, None, {}),
             ("start", "accepted", "in_progress", {})]
    if task["resolved_at"] is not None:
        steps.append(("close", "in_progress", "closed", {}))
    if task["rating"] is not None:
        steps.append(("rated", None, None, {"rating": task["rating"]}))
    steps += [("message", None, None, {"type": "text"})] * (EVENTS_PER_TASK - len(steps))
    end = task["resolved_at"] or at + timedelta(hours=2)
    return [{"task_id": task_id, "actor": "system", "action": action, "from_status": source,
             "to_status": target, "details": details, "at": at + (end - at) * i / len(steps),
             "prev_hash": None, "hash": None}
            for i, (action, source, target, details) in enumerate(steps)]


def _with_facts(task: dict, events: list[dict]) -> list[dict]:
    """`events`, once their facts are on `task` as store.events.record_event keeps them (the
    fill writes rows, not through record_event)."""
    for event in sorted(events, key=lambda event: event["at"]):
        fact = task_fact(actor=event["actor"], action=event["action"], details=event["details"])
        if fact == "last_rated_at":
            task.update(last_rated_at=event["at"], last_rating=rating_of(event["details"]))
        elif fact is not None and task[fact] is None:
            task[fact] = event["at"]
    return events


def pages(db: Database, now: datetime, open_refs: list[int]) -> list[Page]:
    """The console's pages, each as one request's store calls."""
    admin = Actor(ActorKind.AGENT, "alba", admin=True)
    supervisor = Actor(ActorKind.AGENT, "boss", teams=frozenset({SUPERVISED}),
                       supervises=frozenset({SUPERVISED}))
    period = period_from("30d", now=now, tz=TZ)
    refs = iter(open_refs * 1000)

    def read(work: Callable) -> Callable[[], object]:
        def call() -> object:
            with db.transaction(readonly=True) as session:
                return work(session)
        return call

    return [
        Page("board, admin, no filters", read(lambda s: list_board(
            s, actor=admin, filters=BoardFilters(), now=now))),
        Page(f"board, supervisor of {SUPERVISED}", read(lambda s: list_board(
            s, actor=supervisor, filters=BoardFilters(), now=now))),
        Page("task page", read(lambda s: load_task_page(s, actor=admin, ref=next(refs),
                                                        now=now))),
        Page("KPIs, 30 days", read(lambda s: compute_kpis(
            s, period=period, filters=KpiFilters(), tz=TZ, minutes_saved_per_task=12,
            now=now))),
        Page("KPI CSV, 30 days", read(lambda s: sum(1 for _ in kpi_csv_rows(
            s, period=period, filters=KpiFilters(), tz=TZ, now=now)))),
    ]


def http_pages(client: TestClient, cookies: dict[str, str], open_refs: list[int]) -> list[Page]:
    """The same pages as `pages`, each one GET of the console (`cookies`: a session each of
    the admin and the supervisor)."""
    refs = iter(open_refs * 1000)

    def get(path: Callable[[], str], who: str = "admin") -> Callable[[], object]:
        def call() -> object:
            answer = client.get(path(), cookies={"opsbot_session": cookies[who]})
            if answer.status_code != 200:
                raise RuntimeError(f"GET {answer.url}: {answer.status_code} {answer.text[:300]}")
            return answer
        return call

    return [
        Page("board, admin, no filters", get(lambda: "/console/")),
        Page(f"board, supervisor of {SUPERVISED}", get(lambda: "/console/", "supervisor")),
        Page("task page", get(lambda: f"/console/tasks/T-{next(refs)}")),
        Page("KPIs, 30 days", get(lambda: "/console/kpis?period=30d")),
        Page("KPI CSV, 30 days", get(lambda: "/console/kpis.csv?period=30d")),
    ]


def console_sessions(db: Database, now: datetime) -> dict[str, str]:
    """An admin and the supervisor of SUPERVISED, signed in: their session cookies."""
    cookies = {}
    with db.transaction() as session:
        for who, role, teams in (("admin", "admin", ()), ("supervisor", "supervisor",
                                                           (SUPERVISED,))):
            user = add_user(session, email=f"bench-{who}@example.com", role=role, by="bench",
                            teams=teams, now=now).user
            cookies[who], _row = open_session(session, user=user, now=now, mfa_passed=True)
    return cookies


@contextmanager
def console_client(url: str) -> Iterator[TestClient]:
    """The web app on the database at `url`, as opsbot serves it (its lifespan run)."""
    settings = Settings(_env_file=None, database_url=url, redis_url=REDIS_URL,
                        rules_path=ROOT / "rules.yaml")
    services = build_services(settings, migrate=False)
    try:
        with TestClient(create_app(settings, services=services)) as client:
            yield client
    finally:
        services.close()  # handed in: the app leaves them open


def time_page(page: Page, reps: int) -> tuple[float, float]:
    """p50 and p95 in ms of `reps` calls, after a few that warm caches and connections."""
    for _ in range(5):
        page.call()
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        page.call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


def print_table(title: str, results: dict[str, tuple[float, ...]]) -> None:
    """p50/p95 of the store call and, when timed, of the HTTP request, per page."""
    http = any(len(times) > 2 for times in results.values())
    print(f"\n{title}\n{'page':<32} {'store p50':>9} {'p95':>7}"
          + (f" {'HTTP p50':>9} {'p95':>7}" if http else ""))
    for name, times in results.items():
        cells = " ".join(f"{time:>{9 if n % 2 == 0 else 7}.1f}" for n, time in enumerate(times))
        print(f"{name:<32} {cells}{'' if max(times[1::2]) <= 150 else '  > 150 ms'}")


def time_pages(db: Database, now: datetime, refs: list[int], reps: int,
               client: TestClient | None, cookies: dict[str, str]) -> dict[str, tuple]:
    """Per page: store p50, p95 (and HTTP p50, p95 when `client`)."""
    table = {page.name: time_page(page, reps) for page in pages(db, now, refs)}
    if client is not None:
        for page in http_pages(client, cookies, refs):
            table[page.name] += time_page(page, reps)
    return table


def open_task_ids(db: Database) -> list[int]:
    """The numbers of the open tasks (the task pages shown are theirs, in turn)."""
    with db.transaction(readonly=True) as session:
        return list(session.scalars(text("SELECT id FROM tasks WHERE status != 'closed'")))


def drop_console_indexes(db: Database) -> None:
    with db.engine.begin() as connection:
        for name in CONSOLE_INDEXES:
            connection.execute(text(f"DROP INDEX {name}"))
        connection.execute(text("ANALYZE"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=api_bench.ADMIN_URL)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--compare-indexes", action="store_true")
    parser.add_argument("--no-http", action="store_true", help="time the store calls only")
    args = parser.parse_args()
    if not os.environ.get("OPSBOT_DATA_KEYS"):
        os.environ["OPSBOT_DATA_KEYS"] = keys.new_master_entry()
        os.environ["OPSBOT_INDEX_KEY"] = keys.new_key()
    configure_keys(Settings(_env_file=None, database_url=api_bench.ADMIN_URL))
    now = datetime.now(UTC)
    with bench_database(args.database) as url:
        db = Database(url)
        started = time.perf_counter()
        fill(db, args.tasks, now)
        refs = open_task_ids(db)
        cookies = console_sessions(db, now)
        print(f"console_bench: {db.engine.dialect.name}, {args.tasks:,} tasks "
              f"({len(refs):,} open), {args.tasks * EVENTS_PER_TASK:,} audit events, filled in "
              f"{time.perf_counter() - started:.1f} s; {args.reps} calls per page")
        with (nullcontext() if args.no_http else console_client(url)) as client:
            table = time_pages(db, now, refs, args.reps, client, cookies)
            print_table("with the console indexes (0011)", table)
            if args.compare_indexes:
                drop_console_indexes(db)
                table = time_pages(db, now, refs, args.reps, client, cookies)
                print_table("without them", table)
        db.dispose()


if __name__ == "__main__":
    main()

"""The integration API at scale, on PostgreSQL: list latency with 100,000 tasks, and the
fan-out of outgoing webhooks to three receivers.

    .venv/bin/python bench/api_bench.py [--tasks 100000] [--requests 400] [--events 3000]

1. `GET /api/v1/tasks?status=open&limit=50` against `opsbot serve` (one uvicorn process) on a
   fresh PostgreSQL database filled with --tasks tasks (a third of them open, in each open
   status), walking pages with the cursor: server time p50/p99 over --requests requests,
   measured by the client on loopback. Target: p99 <= 50 ms.
2. Webhook fan-out: --events new tasks (`task.created`), each subscribed by three local
   receivers (a process each), delivered by one worker's delivery loop in this process:
   deliveries and events per second. Target: >= 1,000/s.

PostgreSQL: OPSBOT_BENCH_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1/test:
a database `opsbot_bench_<random>` is created beside it and dropped at the end). Redis:
REDIS_URL or 127.0.0.1:6379/7.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.core.bootstrap import configure_keys  # noqa: E402
from bot.core.settings import Settings  # noqa: E402
from bot.usecases.webhooks_out import deliver_due  # noqa: E402
from sandbox.stack import free_port  # noqa: E402
from store import crypto, keys  # noqa: E402
from store.apikeys import create_api_key  # noqa: E402
from store.db import Database, upgrade_database  # noqa: E402
from store.lifecycle import SYSTEM  # noqa: E402
from store.models import Contact, DataKey, Task  # noqa: E402
from store.tasks import create_task  # noqa: E402
from store.webhooks import add_endpoint  # noqa: E402

ADMIN_URL = os.environ.get("OPSBOT_BENCH_POSTGRES_URL",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/7")
OPEN = ("new", "assigned", "accepted", "in_progress", "waiting_customer")
CONTACTS = 1000  # customers the tasks belong to


@contextmanager
def scratch_database(admin_url: str = ADMIN_URL):
    """A fresh PostgreSQL database beside `admin_url`'s, migrated, dropped at the end; yields
    its URL."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"opsbot_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_database(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def fill_contacts(db: Database, now: datetime) -> list[str]:
    """CONTACTS customers, each with their own data key, sealed as opsbot seals them;
    returns their key ids (customer n+1 has the n-th)."""
    key_rows, contact_rows = [], []
    for n in range(CONTACTS):
        key_id, wrapped = crypto.new_data_key()
        key_rows.append({"id": key_id, "wrapped": wrapped, "created_at": now})
        wa_id = f"3460{n:07d}"
        contact_rows.append({
            "data_key_id": key_id, "wa_id_index": keys.blind_index(wa_id),
            "wa_id": crypto.personal(wa_id, key_id), "phone": crypto.personal(wa_id, key_id),
            "name": crypto.personal(f"Cliente {n}", key_id), "crm_status": "lead",
            "tags": [], "external_ids": {}, "first_seen_at": now, "last_seen_at": now,
            "updated_at": now})
    with db.transaction() as session:
        session.execute(insert(DataKey), key_rows)
        session.execute(insert(Contact), contact_rows)
    return [row["id"] for row in key_rows]


def fill(db: Database, count: int) -> None:
    """`count` tasks of CONTACTS customers (sealed as opsbot seals them), a third open."""
    now = datetime.now(UTC)
    key_ids = fill_contacts(db, now)
    for start in range(0, count, 5000):
        rows = []
        for n in range(start, min(start + 5000, count)):
            contact = n % CONTACTS + 1
            status = OPEN[n % len(OPEN)] if n % 3 == 0 else "closed"
            rows.append({
                "title": crypto.personal(f"Pedido {n}: ¿dónde está?", key_ids[contact - 1]),
                "category": "logistics", "priority": "normal", "status": status, "tags": [],
                "skills": [], "declined_by": [], "channel": "whatsapp", "contact_id": contact,
                "team": "logistics", "assignee_id": "ana" if status != "new" else None,
                "version": 1, "timer_generation": 0,
                "created_at": now - timedelta(minutes=count - n), "updated_at": now})
        with db.transaction() as session:
            session.execute(insert(Task), rows)


def list_latency(url: str, requests: int, tmp: Path) -> dict[str, float]:
    """Server time of `GET /api/v1/tasks?status=open` pages, p50 and p99 in ms."""
    db = Database(url)
    with db.transaction() as session:
        _, key = create_api_key(session, name="bench", scopes=["tasks:read"], agent_id=None,
                                now=datetime.now(UTC))
    db.dispose()
    port = free_port()
    (tmp / "rules.yaml").write_text((ROOT / "rules.yaml").read_text())
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": REDIS_URL, "LOG_LEVEL": "WARNING",
           "RULES_PATH": str(tmp / "rules.yaml"), "OPSBOT_DATA_KEYS": os.environ[
               "OPSBOT_DATA_KEYS"], "OPSBOT_INDEX_KEY": os.environ["OPSBOT_INDEX_KEY"]}
    server = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", str(port)],
                              env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10,
                          headers={"Authorization": f"Bearer {key}"}) as client:
            for _ in range(200):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            times, cursor = [], None
            for n in range(requests + 20):
                params = {"status": "open", "limit": 50, **({"cursor": cursor} if cursor else {})}
                started = time.perf_counter()
                answer = client.get("/api/v1/tasks", params=params)
                elapsed = (time.perf_counter() - started) * 1000
                answer.raise_for_status()
                cursor = answer.json()["next_cursor"] if n % 10 else None  # walk, then restart
                if n >= 20:  # the first requests warm connections and caches
                    times.append(elapsed)
    finally:
        server.terminate()
        server.wait(10)
    times.sort()
    return {"p50": statistics.median(times), "p99": times[int(len(times) * 0.99) - 1]}


class _Receiver(BaseHTTPRequestHandler):
    """A receiver that answers 200 at once (HTTP/1.1 keep-alive, no Nagle delay)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass


def _receive(port: int) -> None:
    ThreadingHTTPServer(("127.0.0.1", port), _Receiver).serve_forever()


def fan_out(url: str, events: int) -> dict[str, float]:
    """Deliveries per second of `events` task.created events to three receivers (each in
    its own process), by the delivery loop of one worker (this process)."""
    ports = [free_port() for _ in range(3)]
    receivers = [multiprocessing.Process(target=_receive, args=(port,), daemon=True)
                 for port in ports]
    for receiver in receivers:
        receiver.start()
    db = Database(url)
    try:
        now = datetime.now(UTC)
        with db.transaction() as session:
            for port in ports:
                add_endpoint(session, url=f"http://127.0.0.1:{port}/hook",
                             events=["task.created"], now=now)
        for start in range(0, events, 500):
            with db.transaction() as session:
                for n in range(start, min(start + 500, events)):
                    create_task(session, title=f"t{n}", category="support",
                                priority="normal", actor=SYSTEM, contact_id=n % CONTACTS + 1,
                                now=now)
        time.sleep(0.5)  # the receivers are listening
        started = time.perf_counter()
        attempts = deliver_due(db, owner="bench", seconds=None)
        elapsed = time.perf_counter() - started
    finally:
        db.dispose()
        for receiver in receivers:
            receiver.terminate()
    return {"deliveries": attempts, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--events", type=int, default=3000)
    args = parser.parse_args()
    if not os.environ.get("OPSBOT_DATA_KEYS"):
        os.environ["OPSBOT_DATA_KEYS"] = keys.new_master_entry()
        os.environ["OPSBOT_INDEX_KEY"] = keys.new_key()
    configure_keys(Settings(_env_file=None, database_url=ADMIN_URL))
    with scratch_database() as url, tempfile.TemporaryDirectory() as tmp:
        db = Database(url)
        started = time.perf_counter()
        fill(db, args.tasks)
        db.dispose()
        print(f"api_bench: PostgreSQL, {args.tasks:,} tasks ({args.tasks // 3:,} open) of "
              f"{CONTACTS:,} customers, filled in {time.perf_counter() - started:.1f} s")
        latency = list_latency(url, args.requests, Path(tmp))
        print(f"GET /api/v1/tasks?status=open&limit=50, {args.requests} pages: "
              f"p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms (target p99 <= 50 ms)")
        fan = fan_out(url, args.events)
        rate = fan["deliveries"] / fan["seconds"]
        print(f"webhook fan-out: {args.events:,} events x 3 endpoints = {fan['deliveries']:,} "
              f"deliveries in {fan['seconds']:.1f} s by one worker: {rate:,.0f} deliveries/s, "
              f"{rate / 3:,.0f} events/s (target >= 1,000/s)")


if __name__ == "__main__":
    main()

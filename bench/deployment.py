"""opsbot deployed for a bench: N `opsbot serve` and M `opsbot worker` processes on SQLite or
PostgreSQL and Redis, wired to the sandbox APIs (which run in the bench's process), with the
CPU time each process has used, read from the kernel's accounting (psutil), and the workers'
own split by stage (`bot.worker.cpu`, published in Redis).

A database of its own for each deployment: a SQLite file in a temporary folder, or a
PostgreSQL database created for it on the server at `BENCH_POSTGRES_URL` (default: the local
server's `test` database as admin) and dropped afterwards. Redis is 127.0.0.1:6379 database 8
(flushed) when it answers, else the embedded one (SQLite only).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.worker.cpu import CPU_KEY
from bot.worker.sweeper import ALIVE_KEY
from sandbox.graph import FakeGraph
from sandbox.inbound import whatsapp_message
from sandbox.slack import FakeSlack
from sandbox.stack import (
    PHONE_ID,
    free_port,
    opsbot_command,
    running,
    sandbox_environment,
)
from sandbox.telegram import FakeTelegram
from store import keys
from store.db import Database

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = "redis://127.0.0.1:6379/8"


@dataclass
class Deployment:
    database_url: str
    db: Database
    ports: list[int]
    web: list[psutil.Process]
    workers: list[psutil.Process]
    graph: FakeGraph
    slack: FakeSlack
    telegram: FakeTelegram
    redis: redis.Redis | None
    workdir: Path
    env: dict[str, str] = field(repr=False)

    def cpu(self) -> dict[str, float]:
        """Seconds of CPU used so far (user + system): `web`, `workers` (the worker
        processes) and `scheduler` (the child process RQ's scheduler runs in)."""
        return {
            "web": sum(_tree_cpu(p, children=True) for p in self.web),
            "workers": sum(_tree_cpu(p, children=False) for p in self.workers),
            "scheduler": sum(_tree_cpu(c, children=True)
                             for p in self.workers for c in _children(p)),
        }

    def stages(self) -> dict[str, float]:
        """The workers' CPU seconds by stage, summed (`bot.worker.cpu`), with `process`."""
        totals: dict[str, float] = {}
        if self.redis is None:
            return totals
        for key in self.redis.scan_iter(CPU_KEY.format("*")):
            for name, value in self.redis.hgetall(key).items():
                totals[name.decode()] = totals.get(name.decode(), 0.0) + float(value)
        return totals

    def wait_workers(self, timeout: float = 60) -> None:
        """Until every worker keeps its alive key (a worker still starting misses work)."""
        deadline = time.monotonic() + timeout
        while self.redis is not None and time.monotonic() < deadline:
            if len(list(self.redis.scan_iter(ALIVE_KEY.format("*")))) >= len(self.workers):
                return
            time.sleep(0.2)


@contextmanager
def deploy(rules: str, *, database: str = "sqlite", web: int = 1,
           workers: int = 2) -> Iterator[Deployment]:
    """Runs `web` web processes and `workers` workers with `rules`, until the block ends
    (also when the bench is stopped with SIGTERM: left running, they would take the next
    bench's jobs from the same Redis database)."""
    with ExitStack() as stack:
        previous = signal.signal(signal.SIGTERM, _stopped)
        stack.callback(signal.signal, signal.SIGTERM, previous)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opsbot-bench-")))
        (workdir / "rules.yaml").write_text(rules)
        graph = stack.enter_context(FakeGraph())
        slack = stack.enter_context(FakeSlack())
        telegram = stack.enter_context(FakeTelegram())
        redis_url = _local_redis()
        if database == "postgresql":
            if redis_url is None:
                raise SystemExit("PostgreSQL deployments need Redis at 127.0.0.1:6379")
            url = stack.enter_context(_postgres_database())
        else:
            url = f"sqlite:///{workdir / 'var' / 'opsbot.db'}"
        data_keys, index_key = keys.new_master_entry(), keys.new_key()
        keys.configure(keys.parse_keys(data_keys, index_key))
        overrides = {"RULES_PATH": "rules.yaml",
                     "OPSBOT_DATA_KEYS": data_keys, "OPSBOT_INDEX_KEY": index_key}
        if database == "postgresql":  # SQLite: the embedded default, var/opsbot.db
            overrides["DATABASE_URL"] = url
        if redis_url:
            overrides["REDIS_URL"] = redis_url
        env = sandbox_environment(graph, slack, telegram, **overrides)
        ports = [free_port() for _ in range(web)]
        processes = []
        for index, port in enumerate(ports):  # the first one migrates the database
            serve = opsbot_command("serve", "--port", str(port), *(["--no-migrate"] * bool(index)))
            processes += stack.enter_context(running(
                [serve], env=env, cwd=workdir, ready_url=f"http://127.0.0.1:{port}/healthz"))
        processes += stack.enter_context(running(
            [opsbot_command("worker", "--no-migrate")] * workers, env=env, cwd=workdir,
            ready_url=f"http://127.0.0.1:{ports[0]}/readyz"))
        db = Database(url)
        stack.callback(db.dispose)
        client = redis.Redis.from_url(redis_url) if redis_url else None
        if client is not None:
            stack.callback(client.close)
        deployment = Deployment(
            database_url=url, db=db, ports=ports,
            web=[psutil.Process(p.pid) for p in processes[:web]],
            workers=[psutil.Process(p.pid) for p in processes[web:]],
            graph=graph, slack=slack, telegram=telegram, redis=client, workdir=workdir, env=env,
        )
        deployment.wait_workers()
        yield deployment


@contextmanager
def _postgres_database() -> Iterator[str]:
    admin_url = make_url(POSTGRES_URL)
    name = f"opsbot_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _local_redis() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            pass
    except OSError:
        return None
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()
    return REDIS_URL


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=False)
    except psutil.NoSuchProcess:
        return []


def _tree_cpu(process: psutil.Process, *, children: bool) -> float:
    """User + system seconds of `process` (and of its children, live or reaped, when
    `children`)."""
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    own = times.user + times.system
    if not children:
        return own
    return (own + times.children_user + times.children_system
            + sum(_tree_cpu(c, children=True) for c in _children(process)))


def _stopped(signum: int, _frame) -> None:
    sys.exit(128 + signum)  # unwinds the deployment's ExitStack: its processes stop


def reference_ms() -> float:
    """CPU milliseconds of a fixed pure-Python workload (JSON and SHA-256 of a webhook-sized
    body, 2,000 times): the same code takes less on a faster machine, so figures from
    different days compare once divided by it."""
    body = json.dumps(whatsapp_message(wa_id="34600000000", name="Cliente", phone_id=PHONE_ID,
                                       wamid="wamid.REFERENCE", timestamp=1,
                                       message={"type": "text", "text": {"body": "Hola"}}))
    began = time.process_time()
    for _ in range(2000):
        hashlib.sha256(json.dumps(json.loads(body), sort_keys=True).encode()).hexdigest()
    return (time.process_time() - began) * 1000

"""Floor: what the libraries opsbot stands on cost per operation, and so the least CPU per
customer message that capacity_bench.py's scenario could take with them, before any work of
opsbot's own (rules, routing, the audit chain, encryption, its queries).

Each operation is measured alone, in the process that pays for it, as CPU time (user +
system) from the kernel's accounting:
  - a webhook: uvicorn + FastAPI receive a signed 700-byte POST, check its signature and
    answer 200 (nothing stored), in a server process of its own, driven by bench/loadgen.py;
  - an agent command: the same server hands a signed `/ops` slash command to Slack's Bolt,
    whose listener acks with a line of text;
  - a Slack API call: slack_sdk's AsyncWebClient, on an aiohttp session that keeps its
    connections, posts a message to the sandbox's fake, which runs in a process of its own;
  - a Graph API call: pywa sends a text to the sandbox's fake Graph API, likewise;
  - a row: SQLAlchemy inserts one row (a prebuilt Core INSERT) on SQLite as opsbot configures
    it, either alone in a committed transaction (the intake's commit before the 200) or 25 in
    one transaction (a drain step);
  - an RQ job: enqueued, then run by RQ's SimpleWorker (a function that does nothing).

The floor of a scenario is the sum over its mix (operations per customer message, by
default the mix of capacity_bench.py's scenario as it printed it): webhooks and commands
with a committed row each, the rows that processing writes in steps, and the API calls out.
RQ jobs are left out of the sum (how many a design runs is its choice) but shown.

    python bench/floor_bench.py [--operations 2000] [--mix webhooks=1.25,commands=0.73,...]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import multiprocessing
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from urllib.parse import urlencode

import aiohttp
import loadgen  # bench/loadgen.py, beside this script
import psutil
import uvicorn
from deployment import REDIS_URL, reference_ms
from fastapi import FastAPI, Request, Response
from pywa import WhatsApp
from redis import Redis
from rq import Queue, SimpleWorker
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text, insert

from bot.whatsapp.graph_transport import pywa_http_client
from notifiers.slack import web_api_url
from sandbox.graph import FakeGraph
from sandbox.inbound import slack_signature
from sandbox.slack import FakeSlack
from store.db import make_engine
from store.types import utcnow

# The capacity scenario per customer message, as capacity_bench.py printed it on 2026-12-03
# (1,596 messages stored from 2,000 webhooks; 1,173 agents' commands; 15,320 rows inserted
# besides the webhooks' and the commands' own: contacts, tasks, messages, audit events, outbox
# rows, decisions; 3,270 Slack API calls, cards and their updates; 412 Graph API calls, the
# agents' replies).
MIX = {"webhooks": 1.25, "commands": 0.73, "rows": 9.60, "slack_calls": 2.05, "graph_calls": 0.26}
SECRET = "floor-bench-secret"
BODY = ('{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":'
        '"messages","value":{"messages":[{"from":"34600000000","id":"wamid.FLOOR","type":'
        '"text","text":{"body":"' + "Hola, ¿tenéis stock de la talla M? " * 16 + '"}}]}}]}]}')


def serve(port: int) -> None:
    """The server process: the least a webhook and a Bolt command take."""
    async def authorize(**_kwargs) -> AuthorizeResult:  # no auth.test call per workspace
        return AuthorizeResult(enterprise_id=None, team_id="T1", bot_token="xoxb-floor",
                               bot_user_id="UBOT", bot_id="BBOT")

    bolt = AsyncApp(signing_secret=SECRET, authorize=authorize)

    @bolt.command("/ops")
    async def on_command(ack, body) -> None:
        await ack(text=f"Accepted {body.get('text')}", response_type="ephemeral")

    slack = AsyncSlackRequestHandler(bolt)
    app = FastAPI()

    @app.post("/webhooks/whatsapp")
    async def webhook(request: Request) -> Response:
        raw = await request.body()
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("x-hub-signature-256", "")):
            return Response(status_code=401)
        return Response(b'{"ok":true}', media_type="application/json")

    @app.post("/slack/events")
    async def slack_events(request: Request) -> Response:
        return await slack.handle(request)

    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, log_level="warning")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _slack_command(host: str, number: int) -> bytes:
    body = urlencode({"command": "/ops", "text": f"accept {number}", "user_id": "U0ANA01",
                      "team_id": "T1", "channel_id": "D1", "trigger_id": f"t.{number}",
                      "response_url": "http://127.0.0.1:9/response"}).encode()
    timestamp = int(time.time())
    signature = slack_signature(body, SECRET, timestamp)
    head = (f"POST /slack/events HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Slack-Request-Timestamp: {timestamp}\r\nX-Slack-Signature: {signature}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def measure_server(operations: int) -> dict[str, float]:
    """CPU ms of the server process per webhook and per agent command."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        process = psutil.Process(server.pid)
        _wait_for(port)
        webhooks = [loadgen.signed_post(BODY.encode(), host="127.0.0.1", secret=SECRET)
                    for _ in range(operations)]
        commands = [_slack_command("127.0.0.1", i) for i in range(operations)]
        figures = {}
        for name, requests in (("webhook", webhooks), ("command", commands)):
            loadgen.run(port, requests[:200], concurrency=8)  # warm-up
            before = _cpu(process)
            results, _ = loadgen.run(port, requests, concurrency=8)
            if any(result.status != 200 for result in results):
                statuses = sorted({result.status for result in results})
                raise SystemExit(f"floor_bench: the server answered a {name} with {statuses}")
            figures[name] = (_cpu(process) - before) / operations * 1000
        return figures
    finally:
        server.terminate()
        server.wait()


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("floor_bench: the server did not start")


def _fake(kind: str, urls: multiprocessing.Queue) -> None:
    fake = (FakeSlack() if kind == "slack" else FakeGraph()).start()
    urls.put(fake.url)
    time.sleep(3600)


def _per_call(kind: str, operations: int,
              call: Callable[[str], AbstractContextManager[Callable[[], object]]]) -> float:
    """CPU ms of this process per call made by the function `call(url)` yields, against a
    fake API running in a process of its own."""
    spawn = multiprocessing.get_context("spawn")
    urls = spawn.Queue()
    fake = spawn.Process(target=_fake, args=(kind, urls), daemon=True)
    fake.start()
    try:
        with call(urls.get(timeout=30)) as once:
            for _ in range(50):
                once()
            began = time.process_time()
            for _ in range(operations):
                once()
            return (time.process_time() - began) / operations * 1000
    finally:
        fake.kill()


@contextmanager
def slack_call(url: str) -> Iterator[Callable[[], object]]:
    loop = asyncio.new_event_loop()
    session = loop.run_until_complete(_session())  # kept: its connections stay open
    client = AsyncWebClient(token="xoxb-floor", base_url=web_api_url(url), session=session)
    text = "New task T-1042: Consulta — Cliente 0042 · " + "Hola, ¿tenéis stock? " * 10
    try:
        yield lambda: loop.run_until_complete(client.chat_postMessage(channel="D1", text=text))
    finally:
        loop.run_until_complete(session.close())
        loop.close()


async def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()  # made on the loop that uses it


@contextmanager
def graph_call(url: str) -> Iterator[Callable[[], object]]:
    with pywa_http_client(url) as http:
        wa = WhatsApp(phone_id="1234567890", token="floor-token", session=http)
        yield lambda: wa.send_message(to="34600000000", text="Sí, la tenemos: te la reservo hoy.")


def measure_rows(operations: int) -> dict[str, float]:
    """CPU ms per row inserted: alone in a committed transaction, and 25 per transaction."""
    rows = Table("rows", MetaData(), Column("id", Integer, primary_key=True),
                 Column("body", Text), Column("at", DateTime))
    statement = insert(rows).returning(rows.c.id)
    with tempfile.TemporaryDirectory(prefix="opsbot-floor-") as folder:
        engine = make_engine(f"sqlite:///{folder}/floor.db")
        rows.metadata.create_all(engine)

        def write(per_transaction: int) -> float:
            began = time.process_time()
            for _ in range(operations // per_transaction):
                with engine.begin() as connection:
                    for _ in range(per_transaction):
                        connection.execute(statement, {"body": BODY, "at": utcnow()}).scalar()
            return (time.process_time() - began) / operations * 1000

        figures = {"row alone": write(1), "row in a step": write(25)}
        engine.dispose()
    return figures


def measure_rq(operations: int) -> float:
    """CPU ms per RQ job: the enqueue, and SimpleWorker running it (a function that does
    nothing), both in this process."""
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    queue = Queue("floor", connection=redis)
    began = time.process_time()
    for _ in range(operations):
        queue.enqueue(abs, 1)
    SimpleWorker([queue], connection=redis).work(burst=True, logging_level="WARNING")
    spent = time.process_time() - began
    redis.flushdb()
    return spent / operations * 1000


def parse_mix(text: str) -> dict[str, float]:
    mix = dict(MIX)
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        if name not in MIX:
            raise SystemExit(f"floor_bench: --mix knows {', '.join(MIX)}, not {name!r}")
        mix[name] = float(value)
    return mix


def run(args: argparse.Namespace) -> None:
    mix = parse_mix(args.mix)
    cost = {**measure_server(args.operations), **measure_rows(args.operations),
            "slack call": _per_call("slack", args.operations, slack_call),
            "graph call": _per_call("graph", args.operations, graph_call),
            "rq job": measure_rq(args.operations)}
    print(f"floor_bench: {args.operations} of each operation; this machine's reference "
          f"workload: {reference_ms():.0f} ms CPU")
    labels = {"webhook": "webhook (uvicorn + FastAPI, signature checked, 200)",
              "command": "agent command (the same + Bolt, acked with text)",
              "row alone": "row, alone in a committed transaction (SQLite)",
              "row in a step": "row, 25 in one transaction (SQLite)",
              "slack call": "Slack API call (slack_sdk AsyncWebClient)",
              "graph call": "Graph API call (pywa)",
              "rq job": "RQ job (enqueue + SimpleWorker, not in the floor)"}
    for key, label in labels.items():
        print(f"  {label:<54} {cost[key]:6.3f} ms CPU")
    parts = {
        "webhooks": mix["webhooks"] * (cost["webhook"] + cost["row alone"]),
        "commands": mix["commands"] * (cost["command"] + cost["row alone"]),
        "rows": mix["rows"] * cost["row in a step"],
        "slack_calls": mix["slack_calls"] * cost["slack call"],
        "graph_calls": mix["graph_calls"] * cost["graph call"],
    }
    print("  floor of the capacity scenario, per customer message: "
          + " + ".join(f"{mix[name]:g} {name} {ms:.2f}" for name, ms in parts.items())
          + f" = {sum(parts.values()):.2f} ms CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=2000)
    parser.add_argument("--mix", default="",
                        help="operations per customer message, e.g. webhooks=1.25,commands=0.73")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the server process
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
    else:
        run(args)


if __name__ == "__main__":
    main()

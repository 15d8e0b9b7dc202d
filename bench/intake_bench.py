"""WhatsApp intake over HTTP: accepted messages/s, ack latency, webhook-to-task latency.

The app runs in its own process (uvicorn, SQLite, a real Redis); this process is the load
generator (`bench/loadgen.py`: a raw-socket asyncio HTTP/1.1 client with keep-alive
connections; wrk only with --wrk, below), sending bodies signed with the app secret, one
message per webhook, unique wamids.

Phases (one fresh SQLite database per run):
  1. tasks:      --task-rate msgs/s for --task-seconds with a worker running; p50/p99 from
                 each POST to the task's `created_at` (one new customer per message).
  2. throughput: --messages as fast as --concurrency connections allow (worker stopped);
                 every 200 was sent after its row was committed.
  3. latency:    --rate msgs/s open loop for --seconds; ack latency measured from the
                 scheduled send time (so queueing shows up).

With --wrk, the throughput phase alone runs, driven by wrk (`apt-get install wrk`) instead,
so that the figure compares with other servers measured the same way: `wrk -t1 -c50 -d15s
--latency -s bench/intake_wrk.lua` by default (--wrk-threads, --wrk-connections,
--wrk-seconds). wrk cannot sign, so --wrk-requests distinct messages are signed here first
and the script hands each out once; accepted/s counts the 200s (wrk's count) that the
database also holds as stored webhooks, not merely wrk's requests/s. The other two phases
measure the worker and an open-loop rate, which wrk's closed loop does not.

Run: .venv/bin/python bench/intake_bench.py [--messages 20000] [--rate 1000] [--seconds 5]
     .venv/bin/python bench/intake_bench.py --wrk [--wrk-connections 50] [--wrk-seconds 15]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import loadgen  # bench/loadgen.py, beside this script

from sandbox.inbound import whatsapp_message, whatsapp_signature
from sandbox.stack import free_port

ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = ROOT / "bench" / "intake_wrk.lua"
WRK_MARKER = "intake_wrk "  # starts the line of figures the script's done() writes
WRK_SIGNING_RATE = 10_000  # msgs/s to sign for by default: about twice what 2 cores accept
SECRET = "bench-app-secret"
PHONE_ID = "1000000001"
SERVER = """
import uvicorn
from bot.app import create_app
from bot.core.settings import Settings
uvicorn.run(create_app(Settings()), host="127.0.0.1", port={port}, log_level="warning",
            access_log=False)
"""


@dataclass
class Phase:
    name: str
    sent: int
    ok: int
    seconds: float
    latencies: list[float]


def message_body(n: int, *, run: str, at: int) -> bytes:
    """The webhook body carrying message `n` (its own customer and wamid)."""
    wa_id = f"34{600000000 + n}"
    body = whatsapp_message(wa_id=wa_id, name=f"Cliente {n}", phone_id=PHONE_ID, timestamp=at,
                            wamid=f"wamid.BENCH{run}{n:09d}",
                            message={"type": "text",
                                     "text": {"body": f"Hola, mi pedido {n} no ha llegado"}})
    return json.dumps(body).encode()


def signed_request(n: int, *, run: str, at: int, host: str) -> bytes:
    """The bytes of one POST carrying message `n`."""
    return loadgen.signed_post(message_body(n, run=run, at=at), host=host, secret=SECRET)


def run_phase(name, port, requests, *, concurrency, rate=None) -> tuple[Phase, list]:
    results, seconds = loadgen.run(port, requests, concurrency=concurrency, rate=rate)
    ok = sum(1 for result in results if result.status == 200)
    return Phase(name, len(requests), ok, seconds, [r.latency for r in results]), results


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000


def _env(database: Path, redis_url: str, graph_url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "REDIS_URL": redis_url,
            "RULES_PATH": str(ROOT / "rules.yaml"), "WHATSAPP_TOKEN": "BENCH-TOKEN",
            "WHATSAPP_APP_SECRET": SECRET, "WHATSAPP_VERIFY_TOKEN": "bench",
            "WHATSAPP_PHONE_ID": PHONE_ID, "WHATSAPP_API_BASE_URL": graph_url,
            "PYTHONPATH": str(ROOT)}


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    code = SERVER.format(port=port)
    process = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            time.sleep(0.1)
    process.terminate()
    raise SystemExit("the app did not start")


def start_worker(env: dict[str, str]) -> subprocess.Popen:
    """`opsbot worker`, returned once it has registered with Redis (imports take a while)."""
    from redis import Redis
    from rq import Worker

    process = subprocess.Popen([sys.executable, "-m", "bot", "worker", "--no-migrate"],
                               env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    redis = Redis.from_url(env["REDIS_URL"])
    deadline = time.monotonic() + 30
    while Worker.count(connection=redis) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    redis.close()
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def task_latencies(database: Path, results: list, wamids: list[str], *,
                   timeout: float) -> list[float]:
    """Seconds from each POST to its task's creation, once every task exists."""
    sent = {wamid: result.sent_at for wamid, result in zip(wamids, results, strict=True)}
    deadline = time.monotonic() + timeout
    rows: list = []
    while time.monotonic() < deadline:
        with sqlite3.connect(database) as conn:
            rows = conn.execute(
                "SELECT m.provider_message_id, t.created_at FROM messages m "
                "JOIN tasks t ON t.id = m.task_id WHERE m.provider_message_id LIKE 'wamid.BENCHt%'"
            ).fetchall()
        if len(rows) >= len(sent):
            break
        time.sleep(0.5)
    return [_epoch(created) - sent[wamid] for wamid, created in rows if wamid in sent]


def _epoch(stored: str) -> float:
    moment = datetime.fromisoformat(stored)
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def report(phase: Phase) -> None:
    rate = phase.ok / phase.seconds if phase.seconds else 0
    print(f"{phase.name:<11} {phase.ok}/{phase.sent} accepted (200) in {phase.seconds:.2f} s "
          f"= {rate:,.0f} msgs/s; ack p50 {pct(phase.latencies, 50):.1f} ms, "
          f"p99 {pct(phase.latencies, 99):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--task-rate", type=float, default=5)
    parser.add_argument("--task-seconds", type=float, default=10)
    parser.add_argument("--wrk", action="store_true",
                        help="only the throughput phase, driven by wrk (apt-get install wrk)")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--wrk-connections", type=int, default=50)
    parser.add_argument("--wrk-seconds", type=int, default=15)
    parser.add_argument("--wrk-requests", type=int,
                        help=f"messages signed for wrk (default: {WRK_SIGNING_RATE:,}/s x "
                             "--wrk-seconds, more than it can send)")
    args = parser.parse_args()
    wrk = shutil.which("wrk") if args.wrk else None
    if args.wrk and wrk is None:
        parser.exit(2, "intake_bench: --wrk needs wrk, which is not installed: "
                       "apt-get install wrk\n")
    from bot.core.embedded_redis import EmbeddedRedis
    from sandbox.graph import FakeGraph
    from store.db import upgrade_database

    with ExitStack() as stack:
        redis_url = os.environ.get("BENCH_REDIS_URL") or stack.enter_context(EmbeddedRedis())
        database = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "bench.db"
        upgrade_database(f"sqlite:///{database}")
        graph = stack.enter_context(FakeGraph())  # acknowledgements go to the local fake
        env = _env(database, redis_url, graph.url)
        server, port = start_server(env)
        stack.callback(stop, server)
        host, now = f"127.0.0.1:{port}", int(time.time())
        if wrk:
            run_wrk_throughput(args, wrk, port, now, database)
            return
        print("load generator: Python asyncio raw HTTP/1.1 client, keep-alive, 1 process "
              "(no wrk); app: uvicorn, 1 process, SQLite WAL, asking workers for drains")
        run_tasks(args, port, host, now, env, database)
        bulk = [signed_request(n, run="b", at=now, host=host) for n in range(args.messages)]
        report(run_phase("throughput", port, bulk, concurrency=args.concurrency)[0])
        count = int(args.rate * args.seconds)
        paced = [signed_request(n, run="l", at=now, host=host) for n in range(count)]
        report(run_phase(f"{args.rate:.0f}/s", port, paced, concurrency=args.concurrency,
                         rate=args.rate)[0])


def run_tasks(args, port: int, host: str, now: int, env, database: Path) -> None:
    worker = start_worker(env)
    try:
        count = int(args.task_rate * args.task_seconds)
        wamids = [f"wamid.BENCHt{n:09d}" for n in range(count)]
        requests = [signed_request(n, run="t", at=now, host=host) for n in range(count)]
        phase, results = run_phase(f"{args.task_rate:.0f}/s+work", port, requests,
                                   concurrency=8, rate=args.task_rate)
        report(phase)
        latencies = task_latencies(database, results, wamids, timeout=120)
        print(f"{'':<11} webhook-to-task-created ({len(latencies)}/{count} tasks, 1 worker): "
              f"p50 {pct(latencies, 50):.0f} ms, p99 {pct(latencies, 99):.0f} ms")
    finally:
        stop(worker)


def run_wrk_throughput(args, wrk: str, port: int, now: int, database: Path) -> None:
    """The throughput phase driven by wrk: its figures, and the 200s the database confirms."""
    count = args.wrk_requests or math.ceil(args.wrk_seconds * WRK_SIGNING_RATE)
    requests = database.with_name("wrk-requests.txt")
    write_wrk_requests(requests, count, at=now)
    flags = (f"-t{args.wrk_threads} -c{args.wrk_connections} -d{args.wrk_seconds}s "
             "--latency")
    version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout
    print(f"load generator: {version.split(' Copyright')[0]}, {flags}, "
          f"{WRK_SCRIPT.name} handing out {count:,} distinct signed messages; app: uvicorn, "
          "1 process, SQLite WAL, asking workers for drains")
    command = [wrk, *flags.split(), "-s", str(WRK_SCRIPT),
               f"http://127.0.0.1:{port}/webhooks/whatsapp",
               "--", str(requests), str(count), str(args.wrk_threads)]
    finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode != 0:
        raise SystemExit(f"wrk failed ({finished.returncode}): {finished.stderr.strip()}")
    lines = finished.stdout.splitlines()
    print("\n".join(f"  | {line}" for line in lines if not line.startswith(WRK_MARKER)))
    figures = next(json.loads(line.removeprefix(WRK_MARKER))
                   for line in lines if line.startswith(WRK_MARKER))
    if figures["threads_ran_out"]:
        raise SystemExit(f"wrk used up the {count:,} signed messages within its "
                         f"{args.wrk_seconds} s, so its threads stopped early: raise "
                         "--wrk-requests")
    report_wrk(figures, flags, stored_messages(database, run="w"))


def write_wrk_requests(path: Path, count: int, *, at: int) -> None:
    """`count` distinct messages for intake_wrk.lua, one a line: signature, space, body."""
    with path.open("wb") as out:
        for n in range(count):
            body = message_body(n, run="w", at=at)
            out.write(whatsapp_signature(body, SECRET).encode() + b" " + body + b"\n")


def stored_messages(database: Path, *, run: str) -> int:
    """The messages of `run` stored by the intake (pending: no worker runs), one per wamid."""
    with sqlite3.connect(database) as conn:
        (count,) = conn.execute(
            "SELECT COUNT(DISTINCT provider_event_id) FROM inbound_events "
            "WHERE provider = 'whatsapp' AND kind = 'message' AND status = 'pending' "
            "AND provider_event_id LIKE ?", (f"wamid.BENCH{run}%",)
        ).fetchone()
    return count


def report_wrk(figures: dict, flags: str, stored: int) -> None:
    """Accepted = answered 200 and stored. More stored than 200s is normal (answers still in
    flight when wrk stopped counting); fewer would be a 200 without its commit."""
    seconds = figures["duration_us"] / 1e6
    ok = figures["requests"] - figures["non_2xx_3xx"]
    accepted = min(ok, stored)
    print(f"{'wrk':<11} {accepted}/{figures['requests']} accepted (200, stored) in "
          f"{seconds:.2f} s = {accepted / seconds:,.0f} msgs/s; ack p50 "
          f"{figures['p50_us'] / 1000:.1f} ms, p99 {figures['p99_us'] / 1000:.1f} ms "
          f"(measured with wrk {flags})")
    print(f"{'':<11} wrk: {figures['requests'] / seconds:,.0f} requests/s, "
          f"{figures['non_2xx_3xx']} non-2xx/3xx, socket errors: connect {figures['connect']}, "
          f"read {figures['read']}, write {figures['write']}, timeout {figures['timeout']}; "
          f"latency p75 {figures['p75_us'] / 1000:.1f} ms, p90 {figures['p90_us'] / 1000:.1f} "
          f"ms, max {figures['max_us'] / 1000:.1f} ms; database: {stored} messages stored")
    if stored < ok:
        print(f"{'':<11} {ok - stored} answers were 200 without a stored message")


if __name__ == "__main__":
    main()

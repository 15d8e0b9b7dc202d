"""`opsbot demo`: the whole product in a sandbox, in one command.

opsbot runs as `opsbot run` does (SQLite, embedded Redis, web + worker processes) in a
temporary directory, with local stand-ins for the Graph, Slack Web and Telegram Bot APIs. A
scenario from `examples/` is replayed through the real HTTP endpoints; then the timeline and
the KPI report are printed and everything is stopped.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import func, select

from bot.cli_report import render_report
from rules import load_rules
from sandbox.graph import FakeGraph
from sandbox.inbound import Sender
from sandbox.scenario import Fakes, Player, load_scenario, seed_customers
from sandbox.slack import FakeSlack
from sandbox.telegram import FakeTelegram
from sandbox.timeline import Entry, build_timeline
from store.db import Database
from store.models import OutboxMessage, OutboxStatus
from store.reports import build_report

DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"
PHONE_ID = "100200300"
SECRETS = {"whatsapp": "demo-app-secret", "slack": "demo-signing-secret",
           "telegram": "demo-webhook-secret"}


def run_demo(scenario_path: Path, *, echo: Callable[[str], None] = print) -> int:
    """Replays `scenario_path`, prints the timeline and the report; 0 when every step held."""
    scenario = load_scenario(scenario_path)
    config = load_rules(scenario.rules)
    started = datetime.now(UTC)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opsbot-demo-")))
        (workdir / "rules.yaml").write_bytes(scenario.rules.read_bytes())
        graph, slack, telegram = (stack.enter_context(f()) for f in (FakeGraph, FakeSlack,
                                                                       FakeTelegram))
        port = _free_port()
        echo(f"opsbot demo: «{scenario.name}» in {workdir}")
        stack.enter_context(_opsbot(workdir, _environment(graph, slack, telegram), port, echo))
        db = Database(f"sqlite:///{workdir / 'var' / 'opsbot.db'}")
        stack.callback(db.dispose)
        seed_customers(db, scenario)
        sender = Sender(f"http://127.0.0.1:{port}", SECRETS["whatsapp"], SECRETS["slack"],
                        SECRETS["telegram"])
        steps: list[Entry] = []
        player = Player(scenario, sender, Fakes(slack, telegram), db, config, PHONE_ID,
                        narrate=lambda line: steps.append(Entry(datetime.now(UTC), "scenario",
                                                                line)))
        player.play()
        _settle(db)
        echo("\nTimeline\n--------")
        for entry in sorted(steps + build_timeline(db, config, graph, slack, telegram)):
            echo(entry.render())
        with db.transaction() as session:
            report = build_report(session, since=started, until=datetime.now(UTC),
                                  minutes_per_task=config.minutes_saved_per_task)
        echo("\n" + render_report(report))
    return 0


def _environment(graph: FakeGraph, slack: FakeSlack, telegram: FakeTelegram) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        RULES_PATH="rules.yaml",
        WHATSAPP_PHONE_ID=PHONE_ID, WHATSAPP_TOKEN="demo-token",
        WHATSAPP_APP_SECRET=SECRETS["whatsapp"], WHATSAPP_VERIFY_TOKEN="demo-verify",
        WHATSAPP_API_BASE_URL=graph.url,
        SLACK_BOT_TOKEN="xoxb-demo", SLACK_SIGNING_SECRET=SECRETS["slack"],
        SLACK_API_BASE_URL=slack.url,
        TELEGRAM_BOT_TOKEN="123456:DEMO", TELEGRAM_WEBHOOK_SECRET=SECRETS["telegram"],
        TELEGRAM_API_BASE_URL=telegram.url,
    )
    env.pop("SLACK_APP_TOKEN", None)
    return env


@contextmanager
def _opsbot(workdir: Path, env: dict[str, str], port: int, echo) -> Iterator[None]:
    """`opsbot run` in `workdir`, ready to take requests; stopped (and awaited) on exit."""
    log = (workdir / "opsbot.log").open("wb")
    command = [sys.executable, "-m", "bot", "run", "--port", str(port), "--workers", "2"]
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=log)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        yield
    except BaseException:
        echo((workdir / "opsbot.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"opsbot exited with {process.returncode} while starting")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"opsbot did not become ready at {url} within {timeout:.0f}s")


def _settle(db: Database, timeout: float = 15) -> None:
    """Waits until every queued notification and customer message has been delivered."""
    deadline = time.monotonic() + timeout
    query = select(func.count(OutboxMessage.id)).where(
        OutboxMessage.status == OutboxStatus.PENDING
    )
    while time.monotonic() < deadline:
        with db.transaction() as session:
            if session.scalar(query) == 0:
                return
        time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

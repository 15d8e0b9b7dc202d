"""`opsbot demo`: the whole product in a sandbox, in one command.

opsbot runs as `opsbot run` does (SQLite, embedded Redis, web + worker processes) in a
temporary directory, with local stand-ins for the Graph, Slack Web and Telegram Bot APIs. A
scenario from `examples/` is replayed through the real HTTP endpoints; then the timeline and
the KPI report are printed and everything is stopped.
"""

import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from bot.cli.report import render_report
from rules import load_rules
from sandbox.graph import FakeGraph
from sandbox.scenario import Fakes, Player, load_scenario, seed_customers
from sandbox.slack import FakeSlack
from sandbox.stack import (
    PHONE_ID,
    free_port,
    opsbot_command,
    running,
    sandbox_environment,
    sandbox_sender,
)
from sandbox.telegram import FakeTelegram
from sandbox.timeline import Entry, build_timeline
from store.db import Database
from store.outbox import count_pending_outbox
from store.reports import build_report

DEFAULT_SCENARIO = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"


def run_demo(scenario_path: Path, *, echo: Callable[[str], None] = print) -> int:
    """Replays `scenario_path`, prints the timeline and the report; 0 when every step held.

    Raises ScenarioFailed (with the step) when one does not happen in time.
    """
    scenario = load_scenario(scenario_path)
    config = load_rules(scenario.rules)
    started = datetime.now(UTC)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opsbot-demo-")))
        (workdir / "rules.yaml").write_bytes(scenario.rules.read_bytes())
        graph, slack, telegram = (stack.enter_context(f()) for f in (FakeGraph, FakeSlack,
                                                                       FakeTelegram))
        port = free_port()
        echo(f"opsbot demo: «{scenario.name}» in {workdir}")
        stack.enter_context(running(
            [opsbot_command("run", "--port", str(port), "--workers", "2")],
            env=sandbox_environment(graph, slack, telegram, RULES_PATH="rules.yaml"),
            cwd=workdir, ready_url=f"http://127.0.0.1:{port}/readyz",
        ))
        db = Database(f"sqlite:///{workdir / 'var' / 'opsbot.db'}")
        stack.callback(db.dispose)
        seed_customers(db, scenario)
        steps: list[Entry] = []
        player = Player(scenario, sandbox_sender(port), Fakes(slack, telegram), db, config,
                        PHONE_ID, narrate=lambda line: steps.append(
                            Entry(datetime.now(UTC), "scenario", line)))
        player.play()
        settle(db)
        echo("\nTimeline\n--------")
        for entry in sorted(steps + build_timeline(db, config, graph, slack, telegram)):
            echo(entry.render())
        with db.transaction() as session:
            report = build_report(session, since=started, until=datetime.now(UTC),
                                  minutes_per_task=config.minutes_saved_per_task)
        echo("\n" + render_report(report))
    return 0


def settle(db: Database, timeout: float = 15) -> None:
    """Waits until every queued notification and customer message has been delivered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.transaction(readonly=True) as session:
            if count_pending_outbox(session) == 0:
                return
        time.sleep(0.2)

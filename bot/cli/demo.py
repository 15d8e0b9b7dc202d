"""`opsbot demo`: the whole product in a sandbox, in one command.

opsbot runs as `opsbot run` does (SQLite, embedded Redis, web + worker processes) in a
temporary directory, with local stand-ins for the Graph, Slack Web and Telegram Bot APIs. A
scenario from `examples/` is replayed through the real HTTP endpoints while its timeline is
printed as it happens; then the KPI report is printed and everything is stopped — or, with
`--serve`, kept running with a demo admin for the console until Ctrl-C.
"""

import contextlib
import signal
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from bot.cli.report import render_report
from bot.core.bootstrap import configure_keys
from bot.core.settings import Settings
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
from sandbox.timeline import Entry, sandbox_timeline, streaming
from store.db import Database
from store.outbox import count_pending_outbox
from store.reports import build_report
from store.users import UserRole, add_user

DEFAULT_SCENARIO = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"
DEMO_ADMIN = "admin@demo.opsbot.example"  # example.com's kind: a domain that never receives mail
echo_now = partial(print, flush=True)  # the timeline is read as it comes, even through a pipe


def run_demo(scenario_path: Path, *, echo: Callable[[str], None] = echo_now,
             serve: bool = False) -> int:
    """Replays `scenario_path` printing its timeline as it happens, then the report; 0 when
    every step held. With `serve`, the stack then keeps running (see `serve_console`).

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
        echo("starting opsbot (a web process and two workers)")
        stack.enter_context(running(
            [opsbot_command("run", "--port", str(port), "--workers", "2")],
            env=sandbox_environment(graph, slack, telegram, RULES_PATH="rules.yaml"),
            cwd=workdir, ready_url=f"http://127.0.0.1:{port}/readyz",
        ))
        url = f"sqlite:///{workdir / 'var' / 'opsbot.db'}"
        settings = Settings(database_url=url)
        configure_keys(settings)  # the keys `opsbot run` made or was given
        if settings.key_file.is_file():
            echo(f"customer data is sealed with the keys opsbot run made in {settings.key_file} "
                 "(owner-only)")
        db = Database(url)
        stack.callback(db.dispose)
        seed_customers(db, scenario)
        echo(f"\nTimeline (times in {config.timezone})\n--------")
        timeline = sandbox_timeline(db, config, graph, slack, telegram)
        with streaming(timeline, echo, tz=config.tz):
            player = Player(scenario, sandbox_sender(port), Fakes(slack, telegram, graph), db,
                            config, PHONE_ID, narrate=lambda line: timeline.add(
                                Entry(datetime.now(UTC), "scenario", line)))
            player.play()
            settle(db)
        with db.transaction() as session:
            report = build_report(session, since=started, until=datetime.now(UTC),
                                  minutes_per_task=config.minutes_saved_per_task)
        echo("\n" + render_report(report))
        if serve:
            serve_console(db, f"http://127.0.0.1:{port}", echo=echo)
    return 0


def serve_console(db: Database, url: str, *, echo: Callable[[str], None],
                  wait: Callable[[], None] = signal.pause) -> None:
    """Adds a demo admin, prints the console's address and how to sign in, and returns when
    `wait` does (Ctrl-C by default)."""
    with db.transaction() as session:
        enrolment = add_user(session, email=DEMO_ADMIN, role=UserRole.ADMIN, by="demo",
                             now=datetime.now(UTC))
        secret = enrolment.user.totp_secret
    echo(f"\nThe console: {url}/console/  (Ctrl-C stops everything)")
    echo(f"  email     {DEMO_ADMIN}")
    echo(f"  password  {enrolment.password}")
    echo(f"  TOTP      {secret}  (add it to an authenticator app, or: "
         f"python -c \"import pyotp; print(pyotp.TOTP('{secret}').now())\")")
    echo(f"  enrol     {enrolment.totp_uri}")
    with contextlib.suppress(KeyboardInterrupt):
        wait()
    echo("stopping")


def settle(db: Database, timeout: float = 15) -> None:
    """Waits until every queued notification and customer message has been delivered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.transaction(readonly=True) as session:
            if count_pending_outbox(session) == 0:
                return
        time.sleep(0.2)

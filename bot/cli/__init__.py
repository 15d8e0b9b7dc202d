"""The `opsbot` command line (also `python -m bot`)."""

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.apikeys import apikeys_app
from bot.cli.audit import audit_app
from bot.cli.contacts import contacts_app
from bot.cli.keys import keys_app
from bot.cli.ops import register as register_ops
from bot.cli.report import report as report_command
from bot.cli.retention import retention_app
from bot.cli.rules import rules_app
from bot.cli.support import OpsbotGroup
from bot.cli.tasks import tasks_app
from bot.cli.telegram import telegram_app
from bot.cli.users import users_app
from bot.cli.webhooks import webhooks_app
from bot.core.settings import DATABASE_HELP

app = typer.Typer(cls=OpsbotGroup, epilog=DATABASE_HELP,
                  help="opsbot: every WhatsApp message becomes a task that gets done.")
app.add_typer(tasks_app, name="tasks")
app.add_typer(audit_app, name="audit")
app.add_typer(rules_app, name="rules")
app.add_typer(retention_app, name="retention")
app.add_typer(telegram_app, name="telegram")
app.add_typer(contacts_app, name="contacts")
app.add_typer(keys_app, name="keys")
app.add_typer(apikeys_app, name="apikeys")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(users_app, name="users")
app.command("report")(report_command)
register_ops(app)


@app.command("demo")
def demo(
    scenario: Annotated[
        Path | None, typer.Option(help="Scenario to replay (default examples/demo.yaml).")
    ] = None,
    serve: Annotated[bool, typer.Option(
        "--serve", help="Keep the stack running afterwards and print the console's sign-in.")
    ] = False,
) -> None:
    """Run opsbot in a sandbox and replay a scenario; prints the timeline and the KPIs."""
    from bot.cli.demo import DEFAULT_SCENARIO, run_demo

    raise typer.Exit(run_demo(scenario or DEFAULT_SCENARIO, echo=typer.echo, serve=serve))


def main() -> None:
    app(prog_name="opsbot")

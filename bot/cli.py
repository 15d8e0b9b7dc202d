"""The `opsbot` command line (also `python -m bot`)."""

from pathlib import Path
from typing import Annotated

import typer

from bot.bootstrap import open_database
from bot.cli_ops import register as register_ops
from bot.cli_report import report
from bot.cli_rules import rules_app
from bot.cli_support import JsonFlag, load_settings, print_json
from bot.cli_telegram import telegram_app
from store.errors import DomainError
from store.events import list_events
from store.serialize import event_as_dict, task_as_dict
from store.tasks import get_task, list_tasks

app = typer.Typer(help="opsbot: every WhatsApp message becomes a task that gets done.")
db_app = typer.Typer(help="Database schema.")
tasks_app = typer.Typer(help="Look at tasks.")
app.add_typer(db_app, name="db")
app.add_typer(tasks_app, name="tasks")
app.add_typer(rules_app, name="rules")
app.add_typer(telegram_app, name="telegram")
app.command("report")(report)
register_ops(app)

@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the latest version."""
    settings = load_settings()
    open_database(settings).dispose()
    typer.echo(f"database at {settings.effective_database_url} is up to date")


@tasks_app.command("list")
def tasks_list(
    status: Annotated[list[str] | None, typer.Option(help="Only these statuses.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List tasks, newest first."""
    database = open_database(load_settings())
    with database.transaction() as session:
        rows = [task_as_dict(task) for task in list_tasks(session, statuses=status)]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        typer.echo(
            f"{row['ref']:>7}  {row['status']:<16} {row['priority']:<7} {row['category']:<11} "
            f"{row['assignee'] or '-':<10} {row['team'] or '-':<10} {row['title']}"
        )
    if not rows:
        typer.echo("no tasks")


@tasks_app.command("show")
def tasks_show(ref: str, as_json: JsonFlag = False) -> None:
    """Show one task (T-12 or 12) with its audit trail."""
    database = open_database(load_settings())
    try:
        with database.transaction() as session:
            task = get_task(session, ref=ref)
            row = task_as_dict(task)
            row["events"] = [event_as_dict(e) for e in list_events(session, task_id=task.id)]
    except DomainError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    if as_json:
        print_json(row)
        return
    for key, value in row.items():
        if key != "events" and value not in (None, [], {}):
            typer.echo(f"{key:>18}: {value}")
    typer.echo("events:")
    for event in row["events"]:
        move = f"{event['from'] or ''} -> {event['to']}" if event["to"] else ""
        typer.echo(f"  {event['at']}  {event['actor']:<16} {event['action']:<10} {move}")


@app.command("demo")
def demo(
    scenario: Annotated[
        Path | None, typer.Option(help="Scenario to replay (default examples/demo.yaml).")
    ] = None,
) -> None:
    """Run opsbot in a sandbox and replay a scenario; prints the timeline and the KPIs."""
    from bot.demo import DEFAULT_SCENARIO, run_demo

    raise typer.Exit(run_demo(scenario or DEFAULT_SCENARIO, echo=typer.echo))


def main() -> None:
    app(prog_name="opsbot")

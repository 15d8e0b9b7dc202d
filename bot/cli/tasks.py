"""`opsbot tasks list|show`: look at tasks and their audit trail."""

from typing import Annotated

import typer

from bot.cli.support import JsonFlag, load_settings, print_json
from bot.core.bootstrap import open_database
from store.errors import DomainError
from store.events import list_events
from store.serialize import event_as_dict, task_as_dict
from store.tasks import get_task, list_tasks

tasks_app = typer.Typer(help="Look at tasks.")


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

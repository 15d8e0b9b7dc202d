"""`opsbot tasks list|show`: look at tasks and their audit trail."""

from typing import Annotated, Any

import typer

from bot.cli.support import JsonFlag, load_settings, open_existing_database, print_json
from store.errors import DomainError
from store.events import Audit, list_events
from store.messages import list_task_messages
from store.models import Direction, Message, Task, TaskEvent
from store.serialize import event_as_dict, task_as_dict
from store.tasks import get_task, list_tasks

tasks_app = typer.Typer(help="Look at tasks.")
CONVERSATION_SHOWN = 50  # `tasks show` prints this many of the task's last messages


@tasks_app.command("list")
def tasks_list(
    status: Annotated[list[str] | None, typer.Option(help="Only these statuses.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List tasks, newest first."""
    database = open_existing_database(load_settings())
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
    database = open_existing_database(load_settings())
    try:
        with database.transaction() as session:
            task = get_task(session, ref=ref)
            row = task_as_dict(task)
            events = list_events(session, task_id=task.id)
            row["crm"] = _crm(task)
            row["routing"] = _routing(events)
            row["conversation"] = [_message(m) for m in list_task_messages(
                session, task_id=task.id, limit=CONVERSATION_SHOWN)]
            row["events"] = [event_as_dict(e) for e in events]
    except DomainError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    if as_json:
        print_json(row)
        return
    for key, value in row.items():
        if key not in _LISTED and value not in (None, [], {}):
            typer.echo(f"{key:>18}: {value}")
    _echo_routing(row["routing"])
    typer.echo("conversation:")
    for message in row["conversation"]:
        typer.echo(f"  {message['at']}  {message['from']:<16} {message['text']}")
    typer.echo("events:")
    for event in row["events"]:
        move = f"{event['from'] or ''} -> {event['to']}" if event["to"] else ""
        typer.echo(f"  {event['at']}  {event['actor']:<16} {event['action']:<10} {move}")


_LISTED = ("routing", "conversation", "events")  # printed as sections of their own


def _crm(task: Task) -> dict[str, Any] | None:
    contact = task.contact
    if contact is None:
        return None
    return {"status": contact.crm_status or "lead", "tags": list(contact.tags or ())}


def _routing(events: list[TaskEvent]) -> dict[str, Any] | None:
    """The latest routing decision: summary and every candidate's reason."""
    routed = [e for e in events if e.action == Audit.ROUTED]
    if not routed:
        return None
    details = routed[-1].details or {}
    return {"summary": details.get("summary"), "candidates": details.get("candidates") or []}


def _message(message: Message) -> dict[str, Any]:
    sent = message.sent_at or message.created_at
    return {"at": sent.isoformat() if sent else None,
            "from": "customer" if message.direction == Direction.INBOUND else "us",
            "type": message.type, "text": message.text, "via": message.via,
            "status": message.status}


def _echo_routing(routing: dict[str, Any] | None) -> None:
    if routing is None:
        return
    typer.echo(f"routing: {routing['summary']}")
    for candidate in routing["candidates"]:
        typer.echo(f"  {candidate.get('agent')}: {candidate.get('reason')}")

"""`opsbot contacts export|erase`: answer a customer's access or erasure request (GDPR)."""

import getpass
import json
import os
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.support import JsonFlag, load_settings, open_existing_database, print_json
from store.errors import NotFound
from store.gdpr import erase_contact, export_contact
from store.types import utcnow

contacts_app = typer.Typer(help="A customer's data: export it, or erase it for good.")


@contacts_app.command("export")
def contacts_export(
    wa_id: Annotated[str, typer.Argument(help="The customer's WhatsApp number or user id.")],
    out: Annotated[Path | None, typer.Option(help="Write the JSON here (owner-only), "
                                                  "not to the screen.")] = None,
) -> None:
    """Everything opsbot holds about a customer, as JSON: contact, messages both ways, tasks,
    ratings, media ids and the audit events of their tasks."""
    database = open_existing_database(load_settings())
    try:
        with database.transaction(readonly=True) as session:
            document = export_contact(session, wa_id=wa_id)
    except NotFound as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    finally:
        database.dispose()
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
    if out is None:
        typer.echo(text)
        return
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # a file that was there keeps its mode otherwise
    with os.fdopen(descriptor, "w") as file:
        file.write(text + "\n")
    typer.echo(f"wrote {out} ({len(document['messages'])} messages, "
               f"{len(document['tasks'])} tasks)")


@contacts_app.command("erase")
def contacts_erase(
    wa_id: Annotated[str, typer.Argument(help="The customer's WhatsApp number or user id.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")],
    as_json: JsonFlag = False,
) -> None:
    """Make everything about a customer unreadable for good (their data key is destroyed);
    tasks keep their anonymous figures for the KPIs."""
    if not reason.strip():
        typer.echo("give the reason of the erasure with --reason", err=True)
        raise typer.Exit(2)
    database = open_existing_database(load_settings())
    try:
        with database.transaction() as session:
            erasure = erase_contact(session, wa_id=wa_id, actor=f"cli:{getpass.getuser()}",
                                    reason=reason, now=utcnow())
    except NotFound as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    finally:
        database.dispose()
    if as_json:
        print_json(erasure.as_dict())
        return
    key = ("data key destroyed" if erasure.data_key_destroyed else
           "no data key to destroy (a contact from before encryption: what was written about "
           "them before `opsbot keys rotate` gave them one may still be readable)")
    typer.echo(f"erased contact {erasure.contact_id}: {key}; {erasure.messages} messages, "
               f"{erasure.deliveries} deliveries and {erasure.raw_events} raw events emptied; "
               f"{erasure.tasks} tasks keep their anonymous figures")

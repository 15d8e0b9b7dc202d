"""`opsbot apikeys create|list|revoke`: keys of the integration API (README: Integration)."""

from typing import Annotated

import typer

from bot.cli.support import (
    JsonFlag,
    load_settings,
    open_existing_database,
    print_json,
    require_rules,
)
from rules import load_rules
from store.apikeys import SCOPES, create_api_key, list_api_keys, revoke_api_key
from store.errors import DomainError
from store.models import ApiKey
from store.types import utcnow

apikeys_app = typer.Typer(help="Keys of the integration API (/api/v1).")


@apikeys_app.command("create")
def apikeys_create(
    name: str,
    scopes: Annotated[str, typer.Option(help=f"Comma-separated, among {', '.join(SCOPES)}.")],
    agent: Annotated[str | None, typer.Option(
        help="Act as this agent of rules.yaml, with its permissions (default: as "
        "api:NAME, with an admin's).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a key; it is printed this once (only its digest is kept)."""
    settings = load_settings()
    if agent is not None:
        require_rules(settings.rules_path)
        if load_rules(settings.rules_path).agent(agent) is None:
            _fail(f"there is no agent {agent!r} in {settings.rules_path}; use an id from it")
    database = open_existing_database(settings)
    try:
        with database.transaction() as session:
            row, key = create_api_key(session, name=name, scopes=scopes.split(","),
                                      agent_id=agent, now=utcnow())
            shown = _row(row)
    except DomainError as exc:
        _fail(str(exc))
    finally:
        database.dispose()
    if as_json:
        print_json({**shown, "key": key})
        return
    typer.echo(f"{key}\n\nThe key of {name!r}: keep it now, it is not shown again. "
               f"Send it as `Authorization: Bearer <key>`.")


@apikeys_app.command("list")
def apikeys_list(as_json: JsonFlag = False) -> None:
    """Every key (never the key itself: its first characters)."""
    database = open_existing_database(load_settings())
    try:
        with database.transaction(readonly=True) as session:
            rows = [_row(row) for row in list_api_keys(session)]
    finally:
        database.dispose()
    if as_json:
        print_json(rows)
        return
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        used = f"last used {row['last_used_at'][:16]}" if row["last_used_at"] else "never used"
        typer.echo(f"{row['name']:<20} {row['prefix']}…  {','.join(row['scopes']):<40} "
                   f"{row['agent'] or '-':<10} {state}, {used}")
    if not rows:
        typer.echo("no API keys")


@apikeys_app.command("revoke")
def apikeys_revoke(name: str) -> None:
    """Revoke a key: its next request is refused (401)."""
    database = open_existing_database(load_settings())
    try:
        with database.transaction() as session:
            revoke_api_key(session, name=name, now=utcnow())
    except DomainError as exc:
        _fail(str(exc))
    finally:
        database.dispose()
    typer.echo(f"revoked {name}")


def _row(row: ApiKey) -> dict:
    return {"name": row.name, "prefix": row.prefix, "scopes": list(row.scopes),
            "agent": row.agent_id, "created_at": row.created_at.isoformat(),
            "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
            "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None}


def _fail(message: str) -> None:
    typer.echo(f"opsbot: {message}", err=True)
    raise typer.Exit(1)

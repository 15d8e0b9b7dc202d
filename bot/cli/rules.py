"""`opsbot rules check|test`: validate rules.yaml and dry-run a message against it."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from rules import MessageType, RulesConfig, RulesError, load_rules
from rules.explain import (
    MessageTrial,
    check_rules_file,
    everyone_free,
    explain_message,
    explanation_dict,
    explanation_lines,
    parse_instant,
)

rules_app = typer.Typer(help="Check rules.yaml and try messages against it.", no_args_is_help=True)

EXIT_INVALID = 2


def _default_path() -> Path:
    return Path(os.environ.get("RULES_PATH") or "rules.yaml")


def _load_or_exit(path: Path) -> RulesConfig:
    try:
        return load_rules(path)
    except RulesError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(EXIT_INVALID) from None


@rules_app.command("check")
def check(
    path: Annotated[Path | None, typer.Argument(help="Rules file (default: $RULES_PATH "
                                                     "or rules.yaml)")] = None,
) -> None:
    """Validate a rules file: exit 0 when valid, 2 with PATH:LINE:COL: message otherwise."""
    checked = check_rules_file(path or _default_path())
    for line in checked.lines:
        typer.echo(line, err=not checked.ok)
    if not checked.ok:
        raise typer.Exit(EXIT_INVALID)


@rules_app.command("test")
def test(
    text: Annotated[str, typer.Option("--text", help="Message text")],
    rules_path: Annotated[Path | None, typer.Option("--rules", help="Rules file")] = None,
    message_type: Annotated[MessageType, typer.Option("--type")] = MessageType.text,
    phone: Annotated[str | None, typer.Option("--from", help="Customer phone")] = None,
    status: Annotated[str, typer.Option("--status", help="CRM status")] = "lead",
    at: Annotated[str | None, typer.Option("--at", help="ISO 8601 instant (default now)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show what a message would become: rules, task fields, deadlines and routing
    (every agent counted as available with no open tasks: there is no database here)."""
    config = _load_or_exit(rules_path or _default_path())
    trial = MessageTrial(text=text, type=message_type, status=status, phone=phone)
    found = explain_message(config, trial, now=_parse_instant(at), agents=everyone_free(config))
    if as_json:
        typer.echo(json.dumps(explanation_dict(found), indent=2, ensure_ascii=False))
    else:
        typer.echo("\n".join(explanation_lines(config, found)))


def _parse_instant(at: str | None) -> datetime:
    if at is None:
        return datetime.now(UTC)  # the CLI may read the clock; rules/ never does
    try:
        return parse_instant(at)
    except ValueError as exc:
        raise typer.BadParameter(f"--at {exc}") from None

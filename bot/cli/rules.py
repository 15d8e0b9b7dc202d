"""`opsbot rules check|test|replay`: validate rules.yaml, dry-run a message against it, and
replay a candidate file on the recorded decisions."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from bot.cli.replay import read_thresholds, replay_csv, replay_lines
from bot.cli.support import JsonFlag, load_settings, open_existing_database, print_json
from bot.usecases.replay import Replay, replay_period, replay_rules
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
from rules.replay import Threshold

rules_app = typer.Typer(help="Check rules.yaml, try messages against it, replay a candidate.",
                        no_args_is_help=True)

EXIT_INVALID = 2
EXIT_THRESHOLD = 1


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


Since = Annotated[str | None, typer.Option(help="Replay the last 7d, 24h, 90m… (default 7d)")]
From = Annotated[str | None, typer.Option("--from", help="Period start, ISO 8601")]
To = Annotated[str | None, typer.Option("--to", help="Period end, ISO 8601 (default now)")]
CsvFlag = Annotated[bool, typer.Option("--csv", help="One row per changed message.")]
FailIf = Annotated[list[str] | None, typer.Option(
    "--fail-if", help="Exit 1 when exceeded: METRIC>N or METRIC>N% (also >=); repeatable")]
Workers = Annotated[int | None, typer.Option(
    "--workers", min=1, help="Processes replaying parts of a long period at once "
                             "(default: one per CPU)")]


@rules_app.command("replay")
def replay(candidate: Annotated[Path, typer.Argument(help="The candidate rules file")],
           since: Since = None, start: From = None, end: To = None, as_json: JsonFlag = False,
           as_csv: CsvFlag = False, fail_if: FailIf = None, workers: Workers = None) -> None:
    """Evaluate CANDIDATE on the recorded decisions of a period, each at its own instant
    (routing by the agents' states as they were); nothing is changed. Exit 1 when a
    --fail-if threshold is exceeded, 2 for a bad option, a broken candidate or database."""
    try:
        first, until = replay_period(since, start, end, now=datetime.now(UTC))
        thresholds = read_thresholds(fail_if or [])
    except ValueError as exc:
        _refuse(str(exc))
    if as_json and as_csv:
        _refuse("give --json or --csv, not both")
    config = _load_or_exit(candidate)
    database = open_existing_database(load_settings())
    try:
        found = replay_rules(database, config, since=first, until=until,
                             workers=workers or os.cpu_count() or 1)
    finally:
        database.dispose()
    _print_replay(found, str(candidate), as_json=as_json, as_csv=as_csv)
    _exit_if_exceeded(found, thresholds)


def _exit_if_exceeded(found: Replay, thresholds: list[Threshold]) -> None:
    exceeded = [why for why in (t.exceeded(found.summary) for t in thresholds) if why]
    for why in exceeded:
        typer.echo(f"opsbot: --fail-if {why}", err=True)
    if exceeded:
        raise typer.Exit(EXIT_THRESHOLD)


def _print_replay(found: Replay, candidate: str, *, as_json: bool, as_csv: bool) -> None:
    if as_json:
        print_json(found.as_dict())
    elif as_csv:
        typer.echo(replay_csv(found), nl=False)
    else:
        typer.echo("\n".join(replay_lines(found, candidate)))


def _refuse(problem: str) -> NoReturn:
    typer.echo(f"opsbot: {problem}", err=True)
    raise typer.Exit(EXIT_INVALID)

"""`opsbot retention run [--dry-run] [--json]`: remove now what rules.yaml's `retention:` no
longer keeps (the worker also does it once a day)."""

from typing import Annotated

import typer

from bot.cli.support import (
    JsonFlag,
    load_settings,
    open_existing_database,
    print_json,
    require_rules,
)
from bot.usecases.retention import RetentionReport, run_retention
from rules import load_rules
from store.types import utcnow

retention_app = typer.Typer(help="Data retention (rules.yaml `retention:`).")
ACTOR = "cli"  # who the audit event says ran it


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would go; change nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Remove the raw events, messages and closed tasks older than their retention period."""
    settings = load_settings()
    require_rules(settings.rules_path)
    policy = load_rules(settings.rules_path).retention
    database = open_existing_database(settings)
    try:
        report = run_retention(database, policy, now=utcnow(), dry_run=dry_run, actor=ACTOR)
    finally:
        database.dispose()
    if as_json:
        print_json(report.as_dict())
    elif not report.cutoffs:
        typer.echo(f"{settings.rules_path} has no retention: section: everything is kept")
    else:
        typer.echo(render_report(report))


def render_report(report: RetentionReport) -> str:
    """One line per kind: its period, cutoff and how many rows would go or went."""
    verb = "would go" if report.dry_run else "removed"
    lines = [f"retention {'dry run: nothing is changed' if report.dry_run else 'run'}"]
    for kind, cutoff in report.cutoffs.items():
        line = (f"  {kind:<13} {report.policy[kind]:>6}  older than {cutoff:%Y-%m-%d %H:%M} "
                f"UTC  {verb}: {report.removed[kind]}")
        if kind == "raw_events" and report.kept_raw_events:
            line += f" (kept: {report.kept_raw_events} failed or pending, retryable)"
        lines.append(line)
    return "\n".join(lines)

"""`opsbot audit verify`: check that the audit trail was not changed behind opsbot's back."""

import typer

from bot.cli.support import JsonFlag, load_settings, open_existing_database, print_json
from store.audit import verify_audit

audit_app = typer.Typer(help="Check the audit trail.")


@audit_app.command("verify")
def audit_verify(as_json: JsonFlag = False) -> None:
    """Verify every task's hash chain and the anchors: exit 0 when all hold, 1 otherwise."""
    database = open_existing_database(load_settings())
    with database.transaction(readonly=True) as session:
        report = verify_audit(session)
    if as_json:
        print_json(report.as_dict())
    elif report.ok:
        typer.echo(f"audit trail intact: {report.events} event(s) in {report.chains} chain(s), "
                   f"{report.anchors} anchor(s)" + _legacy(report.legacy))
    else:
        typer.echo(str(report.problems[0]))
        typer.echo(f"{len(report.problems)} problem(s) in {report.events} event(s)"
                   + _legacy(report.legacy))
    raise typer.Exit(0 if report.ok else 1)


def _legacy(count: int) -> str:
    return f"; {count} event(s) from before the chain are not covered" if count else ""

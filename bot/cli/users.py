"""`opsbot users add|list|disable|reset-mfa`: the people who sign in to the web console."""

import getpass
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import typer

from bot.cli.support import (
    JsonFlag,
    load_settings,
    open_existing_database,
    print_json,
    require_rules,
)
from rules import load_rules
from store.errors import DomainError, NotFound
from store.models import User
from store.types import utcnow
from store.users import (
    MFA_REQUIRED,
    Enrolment,
    UserRole,
    add_user,
    disable_user,
    list_users,
    reset_mfa,
)

users_app = typer.Typer(help="People who sign in to the web console.")


@users_app.command("add")
def users_add(
    email: str,
    role: Annotated[str, typer.Option(help=f"One of {', '.join(UserRole)}.")],
    agent: Annotated[str | None, typer.Option(
        help="The rules.yaml agent this person is (required for the agent role).")] = None,
    teams: Annotated[str, typer.Option(help="Comma-separated teams of rules.yaml.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Add a person; prints their enrolment this once.

    The password is read from standard input when one is piped in, else generated and
    printed with the TOTP enrolment link and the recovery codes."""
    team_list = [team.strip() for team in teams.split(",") if team.strip()]
    _check_in_rules(agent, team_list)
    password = _piped_password()
    enrolment = _run(lambda session: _shown(add_user(
        session, email=email, role=role, by=_actor(), agent_id=agent, teams=team_list,
        password=password, now=utcnow())))
    if as_json:
        print_json(enrolment)
        return
    typer.echo(f"added {enrolment['email']} ({enrolment['role']})")
    if enrolment["password"]:
        typer.echo(f"password: {enrolment['password']}")
    _echo_enrolment(enrolment)


@users_app.command("list")
def users_list(as_json: JsonFlag = False) -> None:
    """Every person, with their MFA, lock and disabled state."""
    now = utcnow()
    users = _run(lambda session: [_listed(user, now) for user in list_users(session)],
                 readonly=True)
    if as_json:
        print_json(users)
        return
    for user in users:
        state = ", ".join(filter(None, ("locked" if user["locked"] else "",
                                        "disabled" if user["disabled_at"] else ""))) or "active"
        typer.echo(f"{user['email']:<32} {user['role']:<10} {user['agent'] or '-':<10} "
                   f"{','.join(user['teams']) or '-':<16} MFA {user['mfa']:<8} {state:<16} "
                   f"created {user['created_at'][:10]}")
    if not users:
        typer.echo("no users (add one with `opsbot users add EMAIL --role admin`)")


@users_app.command("disable")
def users_disable(email: str) -> None:
    """Stop a person from signing in; their open sessions end now."""
    shown = _run(lambda session: disable_user(session, email=email, by=_actor(),
                                              now=utcnow()).email)
    typer.echo(f"disabled {shown}; their sessions are ended")


@users_app.command("reset-mfa")
def users_reset_mfa(email: str, as_json: JsonFlag = False) -> None:
    """Give a person a new TOTP secret and recovery codes (a lost phone).

    Their sessions end, and they enrol again at their next sign-in."""
    enrolment = _run(lambda session: _shown(reset_mfa(session, email=email, by=_actor(),
                                                      now=utcnow())))
    if as_json:
        print_json(enrolment)
        return
    typer.echo(f"new second factor for {enrolment['email']}")
    _echo_enrolment(enrolment)


def _actor() -> str:
    # Who ran it, as `opsbot contacts erase` records: user management is as sensitive.
    return f"cli:{getpass.getuser()}"


def _check_in_rules(agent: str | None, teams: list[str]) -> None:
    """Refuses (exit 2) an agent or team that rules.yaml does not define."""
    if agent is None and not teams:
        return
    settings = load_settings()
    require_rules(settings.rules_path)
    problem = load_rules(settings.rules_path).undefined(agent=agent, teams=teams)
    if problem:
        _fail(f"{problem} ({settings.rules_path})")


def _piped_password() -> str | None:
    """The password piped on standard input (its line end removed), or None to generate one."""
    if sys.stdin is None or sys.stdin.isatty():
        return None
    piped = sys.stdin.read().rstrip("\r\n")
    return piped or None


def _run(work: Callable[[Any], Any], *, readonly: bool = False) -> Any:
    """`work(session)` in one transaction; an unknown person is one line on stderr and exit
    code 1, another refusal (a wrong input) exit code 2."""
    database = open_existing_database(load_settings())
    try:
        with database.transaction(readonly=readonly) as session:
            return work(session)
    except NotFound as exc:
        _fail(str(exc), code=1)
    except DomainError as exc:
        _fail(str(exc))
    finally:
        database.dispose()


def _shown(enrolment: Enrolment) -> dict[str, Any]:
    user = enrolment.user
    return {"email": user.email, "role": str(user.role), "agent": user.agent_id,
            "teams": list(user.teams), "password": enrolment.password,
            "mfa_required": user.role in MFA_REQUIRED, "totp_uri": enrolment.totp_uri,
            "recovery_codes": enrolment.recovery_codes}


def _listed(user: User, now: datetime) -> dict[str, Any]:
    return {"email": user.email, "role": user.role, "agent": user.agent_id,
            "teams": list(user.teams),
            "mfa": "enrolled" if user.mfa_enrolled_at else "pending",
            "locked": user.locked_until is not None and user.locked_until > now,
            "disabled_at": user.disabled_at.isoformat() if user.disabled_at else None,
            "created_at": user.created_at.isoformat()}


def _echo_enrolment(enrolment: dict[str, Any]) -> None:
    need = "required" if enrolment["mfa_required"] else "optional for agents"
    typer.echo(f"TOTP enrolment ({need}): {enrolment['totp_uri']}")
    typer.echo("recovery codes (each works once):")
    for code in enrolment["recovery_codes"]:
        typer.echo(f"  {code}")
    typer.echo("Hand these over now: they are not shown again.")


def _fail(message: str, *, code: int = 2) -> None:
    typer.echo(f"opsbot: {message}", err=True)
    raise typer.Exit(code)

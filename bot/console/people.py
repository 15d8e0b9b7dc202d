"""The people who sign in to the console, for admins: who they are and how they sign in, and
the dangerous changes — role, teams and agent; disabling; a new second factor — each behind
CSRF and a re-entered code (step-up), done by the store functions of `opsbot users` and
audited with the admin's label. Adding people stays in the CLI (`opsbot users add`), which
hands over the password."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from bot.console.auth import (
    Viewer,
    checked,
    require_admin,
    require_step_up,
    services_of,
    signed_in,
)
from bot.console.pages import redirect, render
from rules import RulesConfig
from store.errors import DomainError, NotFound
from store.models import User
from store.types import utcnow
from store.users import (
    MFA_REQUIRED,
    UserRole,
    disable_user,
    get_user_by_id,
    list_users,
    qr_svg,
    reset_mfa,
    set_role,
)

router = APIRouter()
Signed = Annotated[Viewer, Depends(signed_in)]
Field = Annotated[str, Form()]


@dataclass(frozen=True)
class PersonRow:
    """One console user as the page shows them."""

    id: int
    email: str
    role: str
    agent: str | None
    teams: tuple[str, ...]
    mfa_enrolled: bool
    locked_until: datetime | None  # only while the lock holds
    disabled_at: datetime | None
    is_viewer: bool  # the admin looking: they may not disable themself or drop admin


@dataclass(frozen=True)
class NewFactor:
    """A reset second factor, shown once in the answer to the POST (never in a URL)."""

    email: str
    uri: str
    qr: str  # an inline <svg>
    recovery_codes: tuple[str, ...]
    required: bool  # their role must use it; an agent may


@router.get("/users", name="users_page")
def users_page(request: Request, viewer: Signed, said: str = "", failed: str = "") -> Response:
    require_admin(viewer)
    return _page(request, viewer, said=said, failed=failed)


def _page(request: Request, viewer: Viewer, *, said: str = "", failed: str = "",
          new_factor: NewFactor | None = None) -> Response:
    services = services_of(request)
    config = services.rules.current
    now = utcnow()
    with services.db.transaction(readonly=True) as session:
        rows = [_row(user, viewer, now) for user in list_users(session)]
    response = render(request, "users.html", viewer=viewer, rows=rows, said=said,
                      failed=failed, new_factor=new_factor, roles=list(UserRole),
                      agents=sorted(config.agents, key=lambda agent: agent.name),
                      teams=sorted(config.teams), stepped_up=viewer.stepped_up(now))
    response.headers["Cache-Control"] = "no-store"  # recovery codes must not stay in a cache
    return response


def _row(user: User, viewer: Viewer, now: datetime) -> PersonRow:
    locked = user.locked_until if user.locked_until and user.locked_until > now else None
    return PersonRow(user.id, user.email, user.role, user.agent_id, tuple(user.teams or ()),
                     user.mfa_enrolled_at is not None, locked, user.disabled_at,
                     user.id == viewer.user_id)


@router.post("/users/{user_id}/role", name="user_role")
async def user_role(request: Request, viewer: Signed, user_id: int, role: Field,
                    agent: Field = "", teams: Field = "") -> Response:
    await checked(request, viewer)
    require_admin(viewer)
    require_step_up(request, viewer)
    team_list = [team.strip() for team in teams.split(",") if team.strip()]
    return _answered(request, lambda: _change_role(request, viewer, user_id, role.strip(),
                                                   agent.strip() or None, team_list))


@router.post("/users/{user_id}/disable", name="user_disable")
async def user_disable(request: Request, viewer: Signed, user_id: int) -> Response:
    await checked(request, viewer)
    require_admin(viewer)
    require_step_up(request, viewer)
    return _answered(request, lambda: _disable(request, viewer, user_id))


@router.post("/users/{user_id}/reset-mfa", name="user_reset_mfa")
async def user_reset_mfa(request: Request, viewer: Signed, user_id: int) -> Response:
    await checked(request, viewer)
    require_admin(viewer)
    require_step_up(request, viewer)
    with services_of(request).db.transaction() as session:
        enrolment = reset_mfa(session, email=_user(session, user_id).email,
                              by=viewer.actor.label, now=utcnow())
        user = enrolment.user
        new_factor = NewFactor(user.email, enrolment.totp_uri, qr_svg(enrolment.totp_uri),
                               tuple(enrolment.recovery_codes),
                               UserRole(user.role) in MFA_REQUIRED)
    # The page itself, not a redirect: the codes must never travel in a URL.
    return _page(request, viewer, new_factor=new_factor,
                 said=f"{new_factor.email} has a new second factor; their sessions are ended.")


@router.get("/users/{user_id}/reset-mfa")
def user_reset_mfa_again(request: Request, viewer: Signed, user_id: int) -> Response:
    """The address of the page that showed a new factor, reached again (a reload, or a
    step-up coming back to the Referer): the list, since the codes are shown only once."""
    require_admin(viewer)
    return redirect(request.url_for("users_page").path)


def _change_role(request: Request, viewer: Viewer, user_id: int, role: str,
                 agent: str | None, teams: list[str]) -> str:
    """Sets the user's role, agent and teams; returns what happened. Raises DomainError for
    an unknown role, agent or team, or an admin removing their own admin role."""
    services = services_of(request)
    _check_in_rules(services.rules.current, agent, teams)
    with services.db.transaction() as session:
        user = _user(session, user_id)
        if user.id == viewer.user_id and role.lower() != UserRole.ADMIN:
            raise DomainError("You cannot remove your own admin role: ask another admin.")
        set_role(session, email=user.email, role=role, teams=teams, agent_id=agent,
                 by=viewer.actor.label, now=utcnow())
        return (f"{user.email} is now {user.role}, agent {user.agent_id or 'none'}, "
                f"teams {', '.join(user.teams) or 'none'}.")


def _disable(request: Request, viewer: Viewer, user_id: int) -> str:
    """Disables the user and ends their sessions; returns what happened. Raises DomainError
    for the admin themself (nobody would be left to undo a mistake from here)."""
    if user_id == viewer.user_id:
        raise DomainError("You cannot disable yourself: ask another admin.")
    with services_of(request).db.transaction() as session:
        user = disable_user(session, email=_user(session, user_id).email,
                            by=viewer.actor.label, now=utcnow())
        return f"{user.email} is disabled: their sessions are ended and they cannot sign in."


def _check_in_rules(config: RulesConfig, agent: str | None, teams: list[str]) -> None:
    """Raises DomainError for an agent or team that rules.yaml does not define (the check
    `opsbot users add` makes before the store's own)."""
    problem = config.undefined(agent=agent, teams=teams)
    if problem:
        raise DomainError(problem[0].upper() + problem[1:] + ".")


def _user(session: Session, user_id: int) -> User:
    user = get_user_by_id(session, user_id=user_id)
    if user is None:
        raise NotFound("There is no such user (they may have been removed).")
    return user


def _answered(request: Request, act: Callable[[], str]) -> Response:
    """Back to the page with what `act()` said, or why nothing was changed (the store's
    sentences start in lower case: the page shows them as sentences)."""
    try:
        key, text = "said", act()
    except DomainError as exc:
        key, text = "failed", _sentence(str(exc))
    return redirect(request.url_for("users_page").path + f"?{key}={quote(text)}")


def _sentence(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."

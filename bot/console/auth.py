"""Who is signed in to the console: the session cookie, the person behind it, CSRF tokens,
sign-in rate limits and step-up.

A console user acts through the same permission table as the chat commands: a user bound to
a rules.yaml agent (`opsbot users add --agent`) acts as that agent (label `agent:<id>`), with
the role's extra reach: a supervisor also supervises the user's `--teams`, an admin sees
everything. A user of no agent acts as `console:<email>`.
"""

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlsplit

from fastapi import Request
from redis.exceptions import RedisError

from bot.core import tunables
from bot.core.ratelimit import count_hit
from bot.core.services import Services
from notifiers.commands import actor_for
from rules import Agent, RulesConfig
from store.events import record_event
from store.lifecycle import Actor, ActorKind
from store.models import ConsoleSession, User
from store.types import utcnow
from store.users import UserRole, find_session, needs_touch, touch_session

SESSION_COOKIE = "opsbot_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
CSRF_REFUSED = "console_csrf_refused"  # audit action of a forged or stale form
RATE_KEY = "opsbot:console:sign-in:{address}:{window}"
log = logging.getLogger(__name__)


class SignInNeeded(Exception):
    """No valid session: the person is sent to the sign-in page."""


class Refused(Exception):
    """A request the console answers with an error page: `status` and a sentence."""

    def __init__(self, status: int, sentence: str):
        super().__init__(sentence)
        self.status, self.sentence = status, sentence


class StepUpNeeded(Exception):
    """A dangerous action without a recently re-entered code: the person is sent to enter
    one, then back to `target`."""

    def __init__(self, target: str):
        super().__init__(target)
        self.target = target


def services_of(request: Request) -> Services:
    """The web app's services (the console is a sub-application: they live on the parent)."""
    return request.app.state.services_of()


@dataclass(frozen=True)
class ConsoleActor(Actor):
    """A console user of no agent as the audit trail and the permission table see them."""

    @property
    def label(self) -> str:
        return f"console:{self.id}"


@dataclass(frozen=True)
class Viewer:
    """The signed-in person of a request."""

    user_id: int
    email: str
    role: UserRole
    agent: Agent  # their rules.yaml agent, or a stand-in named after them
    actor: Actor
    session_id: int
    csrf_token: str
    stepped_up_at: datetime | None

    @property
    def is_admin(self) -> bool:
        return self.role is UserRole.ADMIN

    @property
    def oversees(self) -> bool:
        """Supervisors and admins: the agents', operations' and rules' screens."""
        return self.role in (UserRole.ADMIN, UserRole.SUPERVISOR)

    def stepped_up(self, now: datetime) -> bool:
        """Whether a code was re-entered recently enough for a dangerous action."""
        return (self.stepped_up_at is not None
                and now - self.stepped_up_at <= tunables.CONSOLE_STEP_UP_FOR)


def act_as(user: User, config: RulesConfig) -> tuple[Agent, Actor] | None:
    """The agent and the permission actor of `user`, or None when their agent has left
    rules.yaml (they can no longer act for anyone)."""
    role = UserRole(user.role)
    teams = frozenset(user.teams or ())
    if user.agent_id:
        agent = config.agent(user.agent_id)
        if agent is None:
            return None
        base = actor_for(agent, config)
        actor = Actor(ActorKind.AGENT, id=agent.id, admin=role is UserRole.ADMIN or base.admin,
                      teams=base.teams | (teams if role is UserRole.AGENT else frozenset()),
                      supervises=base.supervises | _supervised(role, teams))
        return agent, actor
    stand_in = Agent(id=f"console:{user.email}", name=user.email, teams=tuple(sorted(teams)))
    actor = ConsoleActor(ActorKind.AGENT, id=user.email, admin=role is UserRole.ADMIN,
                         teams=teams, supervises=_supervised(role, teams))
    return stand_in, actor


def _supervised(role: UserRole, teams: frozenset[str]) -> frozenset[str]:
    return teams if role is UserRole.SUPERVISOR else frozenset()


def require_overseer(viewer: Viewer) -> Viewer:
    """`viewer` when a supervisor or an admin; else a 403 page."""
    if not viewer.oversees:
        raise Refused(403, "Only supervisors and admins may see this page.")
    return viewer


def require_admin(viewer: Viewer) -> Viewer:
    """`viewer` when an admin; else a 403 page."""
    if not viewer.is_admin:
        raise Refused(403, "Only admins may do this.")
    return viewer


def signed_in(request: Request) -> Viewer:
    """The dependency of every page after sign-in: the viewer, or SignInNeeded."""
    found = _session_of(request, mfa_passed=True)
    if found is None:
        raise SignInNeeded()
    return found


def half_signed_in(request: Request) -> tuple[ConsoleSession, User]:
    """The session of a person who gave their password but not yet their code."""
    services = services_of(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    with services.db.transaction(readonly=True) as session:
        found = find_session(session, token=token, now=utcnow(),
                             idle=tunables.CONSOLE_IDLE, absolute=tunables.CONSOLE_ABSOLUTE)
        if found is None or found.mfa_passed:
            raise SignInNeeded()
        session.expunge_all()
        return found, found.user


def _session_of(request: Request, *, mfa_passed: bool) -> Viewer | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    services = services_of(request)
    now = utcnow()
    with services.db.transaction(readonly=True) as session:  # a page view waits for no writer
        found = find_session(session, token=token, now=now,
                             idle=tunables.CONSOLE_IDLE, absolute=tunables.CONSOLE_ABSOLUTE)
        if found is None or found.mfa_passed != mfa_passed:
            return None
        viewer = _viewer(found, services.rules.current)
        stale = needs_touch(found, now=now)
    if viewer is not None and stale:
        with services.db.transaction() as session:
            touch_session(session, session_id=viewer.session_id, now=now)
    return viewer


def _viewer(found: ConsoleSession, config: RulesConfig) -> Viewer | None:
    acting = act_as(found.user, config)
    if acting is None:
        return None  # their agent left rules.yaml: they act for nobody
    return Viewer(found.user.id, found.user.email, UserRole(found.user.role), *acting,
                  session_id=found.id, csrf_token=found.csrf_token,
                  stepped_up_at=found.stepped_up_at)


async def checked(request: Request, viewer: Viewer) -> Viewer:
    """`viewer`, once the request carries their CSRF token (form field or htmx header);
    a forged or stale request is refused and audited."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        sent = str(form.get(CSRF_FIELD, ""))
    if not hmac.compare_digest(sent.encode(), viewer.csrf_token.encode()):
        refuse_forgery(request, actor=viewer.actor.label)
    return viewer


def refuse_forgery(request: Request, *, actor: str) -> None:
    """Audits a request without the right CSRF token, then refuses it."""
    with services_of(request).db.transaction() as session:
        record_event(session, task=None, actor=actor, action=CSRF_REFUSED,
                     details={"method": request.method, "path": request.url.path})
    raise Refused(403, "This form has expired or did not come from the console. Reload the "
                  "page and try again.")


def limit_sign_in(request: Request, now: datetime | None = None) -> None:
    """A fixed window of sign-in attempts per client address, else a 429 page. Redis
    trouble lets the attempt through (logged): the per-account lockout still holds."""
    address = request.client.host if request.client else "unknown"
    key = RATE_KEY.format(address=address, window="{window}")
    try:
        counted = count_hit(services_of(request).redis, key,
                            window=tunables.CONSOLE_SIGN_IN_WINDOW, now=now or utcnow())
    except (RedisError, OSError) as exc:
        log.warning("console sign-in limit: Redis unavailable (%s); attempt let through", exc)
        return
    if counted.hits > tunables.CONSOLE_SIGN_IN_LIMIT:
        raise Refused(429, "Too many sign-in attempts from this address. Wait a few minutes "
                      "and try again.")


def secure_cookies(request: Request) -> bool:
    """`Secure` cookies when the console is reached over HTTPS (directly, or PUBLIC_URL says
    so behind a proxy that ends TLS)."""
    public_url = services_of(request).settings.public_url or ""
    return request.url.scheme == "https" or public_url.startswith("https://")


def require_step_up(request: Request, viewer: Viewer) -> None:
    """Returns when the viewer re-entered their code within CONSOLE_STEP_UP_FOR (before user
    roles, erasure, rules changes); else raises StepUpNeeded back to the page they were on."""
    if viewer.stepped_up(utcnow()):
        return
    back = safe_next(request, request.headers.get("referer", ""))
    raise StepUpNeeded(request.url_for("step_up_page").path + "?next=" + quote(back))


def safe_next(request: Request, target: str) -> str:
    """`target` when it is a page of this console (never another site), else the board."""
    parts = urlsplit(target)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    inside = root_of(request).rstrip("/") + "/"
    if parts.netloc in ("", request.url.netloc) and path.startswith(inside) \
            and "\\" not in path:
        return path
    return request.url_for("board_page").path


def root_of(request: Request) -> str:
    """The console's path prefix (its cookies' path)."""
    return request.scope.get("root_path", "") or "/"

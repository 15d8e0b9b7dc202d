"""Who calls: `Authorization: Bearer <key>`, the key's scopes and its rate limit.

A refused request (401, 403) is written to the audit trail (`api_denied`, system chain),
naming the key when it is known and never the key presented. A key bound to an agent acts as
that agent, with that agent's permissions; an unbound key acts as `api:<name>` with the
permissions of an admin (its scopes decide what it may do at all).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, NoReturn

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.exceptions import RedisError

from bot.api.problems import Problem
from bot.core import tunables
from bot.core.ratelimit import count_hit
from bot.core.services import Services
from notifiers.commands import actor_for
from rules import Agent, RulesConfig
from store.apikeys import find_api_key, note_key_used
from store.events import record_event
from store.lifecycle import Actor, ActorKind
from store.types import utcnow

API_DENIED = "api_denied"  # no task: details: reason, method, path, status
UNKNOWN = "api:unknown"
RATE_KEY = "opsbot:api:rate:{key_id}:{window}"
# Reads the header and puts the scheme in the OpenAPI schema (the docs' Authorize button);
# the refusal is ours (audited), not its own 403.
BEARER = HTTPBearer(auto_error=False, description="A key from `opsbot apikeys create`.")
log = logging.getLogger(__name__)


def services_of(request: Request) -> Services:
    """The web app's services (the API is a sub-application: they live on the parent)."""
    return request.app.state.services_of()


@dataclass(frozen=True)
class ApiActor(Actor):
    """An unbound key as the audit trail and the permission table see it: `api:<name>`, an
    admin."""

    @property
    def label(self) -> str:
        return f"api:{self.id}"


@dataclass(frozen=True)
class Caller:
    """The key of a request: who it acts as, and what it may do."""

    key_id: int
    name: str
    scopes: frozenset[str]
    agent: Agent  # the bound agent, or a stand-in named after the key
    actor: Actor
    bound: bool

    @property
    def label(self) -> str:
        return self.actor.label


def require(scope: str) -> Callable[..., Caller]:
    """The dependency of a route that needs `scope`: the caller, or 401/403/429 problems."""

    def caller(request: Request, credentials: Annotated[
            HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> Caller:
        services = services_of(request)
        found = _authenticate(services, request, credentials)
        if scope not in found.scopes:
            _deny(services, request, actor=found.label, status=403,
                  reason=f"the key {found.name!r} lacks the scope {scope}")
        _limit_rate(services, found)
        return found

    caller.__name__ = f"require_{scope.replace(':', '_')}"
    return caller


def _authenticate(services: Services, request: Request,
                  credentials: HTTPAuthorizationCredentials | None) -> Caller:
    if credentials is None or not credentials.credentials.strip():
        _deny(services, request, actor=UNKNOWN, status=401,
              reason="no Authorization: Bearer <key> header")
    config = services.rules.current
    with services.db.transaction(readonly=True) as session:
        row = find_api_key(session, key=credentials.credentials.strip())
        found = _caller(row, config) if row is not None else None
    if found is None:
        _deny(services, request, actor=UNKNOWN, status=401,
              reason="unknown or revoked API key")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= tunables.API_KEY_USED_EVERY:
        with services.db.transaction() as session:
            note_key_used(session, key_id=row.id, now=now, every=tunables.API_KEY_USED_EVERY)
    return found


def _caller(row, config: RulesConfig) -> Caller | None:
    agent = config.agent(row.agent_id) if row.agent_id else None
    if row.agent_id and agent is None:
        return None  # its agent left rules.yaml: the key no longer acts for anyone
    scopes = frozenset(row.scopes or ())
    if agent is not None:
        return Caller(row.id, row.name, scopes, agent, actor_for(agent, config), bound=True)
    stand_in = Agent(id=f"api:{row.name}", name=f"API key {row.name}", admin=True)
    actor = ApiActor(ActorKind.AGENT, id=row.name, admin=True)
    return Caller(row.id, row.name, scopes, stand_in, actor, bound=False)


def _deny(services: Services, request: Request, *, actor: str, status: int,
          reason: str) -> NoReturn:
    """Audits the refusal, then raises it as a problem."""
    details = {"reason": reason, "method": request.method, "path": request.url.path,
               "status": status}
    with services.db.transaction() as session:
        record_event(session, task=None, actor=actor, action=API_DENIED, details=details)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    raise Problem(status, reason[0].upper() + reason[1:], headers=headers)


def _limit_rate(services: Services, caller: Caller, now: datetime | None = None) -> None:
    """A fixed window per key: API_RATE_LIMIT requests per API_RATE_WINDOW seconds, else 429
    with Retry-After. Redis trouble lets the request through (logged): the limit protects the
    service and must not take the API down with Redis."""
    window = tunables.API_RATE_WINDOW
    key = RATE_KEY.format(key_id=caller.key_id, window="{window}")
    try:
        counted = count_hit(services.redis, key, window=window, now=now or utcnow())
    except (RedisError, OSError) as exc:
        log.warning("API rate limit: Redis unavailable (%s); request let through", exc)
        return
    if counted.hits > tunables.API_RATE_LIMIT:
        raise Problem(429, f"Rate limit of {tunables.API_RATE_LIMIT} requests per {window} s "
                      "reached for this key; retry after the Retry-After seconds",
                      headers={"Retry-After": str(counted.retry_after)})

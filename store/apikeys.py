"""Keys of the integration API (`opsbot apikeys`, README: Integration): only a digest is kept.

The key is shown once, at creation. It is stored as its SHA-256, not an Argon2 hash: a key is
256 random bits, so no guessing or rainbow table can reach it, and it is checked on every API
request, where Argon2 would cost ~50 ms each.
"""

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from store.errors import DomainError, NotFound
from store.models import ApiKey

KEY_PREFIX = "opsk_"
SHOWN_PREFIX = 12  # characters of a key kept to tell keys apart in listings: opsk_ + 7
SCOPES = ("tasks:read", "tasks:write", "contacts:read", "contacts:write", "events:read",
          "webhooks:admin", "contacts:admin")  # contacts:admin: GDPR export and erasure
NAME_LIMIT = 64


def create_api_key(session: Session, *, name: str, scopes: Iterable[str], agent_id: str | None,
                   now: datetime) -> tuple[ApiKey, str]:
    """A new key named `name` and the key itself (shown once, never stored). Raises
    DomainError for an empty, too long or taken name, or unknown or missing scopes."""
    name = name.strip()
    if not name or len(name) > NAME_LIMIT:
        raise DomainError(f"an API key needs a name of 1 to {NAME_LIMIT} characters")
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise DomainError(f"there is an API key named {name!r} already; pick another name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=key[:SHOWN_PREFIX], digest=_digest(key),
                 scopes=check_scopes(scopes), agent_id=agent_id, created_at=now)
    session.add(row)
    session.flush()
    return row, key


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """`scopes` sorted, without repeats. Raises DomainError naming any unknown scope."""
    wanted = sorted({scope.strip() for scope in scopes if scope.strip()})
    unknown = [scope for scope in wanted if scope not in SCOPES]
    if unknown or not wanted:
        problem = f"unknown scope(s): {', '.join(unknown)}" if unknown else "no scope given"
        raise DomainError(f"{problem}; use one or more of {', '.join(SCOPES)}")
    return wanted


def list_api_keys(session: Session) -> list[ApiKey]:
    """Every key, revoked ones too, oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_api_key(session: Session, *, name: str, now: datetime) -> ApiKey:
    """Revokes the key named `name` (its next request gets 401); revoking twice keeps the
    first time. Raises NotFound when there is no such key."""
    row = session.scalars(select(ApiKey).where(ApiKey.name == name)).first()
    if row is None:
        raise NotFound(f"there is no API key named {name!r} (`opsbot apikeys list`)")
    row.revoked_at = row.revoked_at or now
    return row


def find_api_key(session: Session, *, key: str) -> ApiKey | None:
    """The key that is `key`, or None when unknown or revoked."""
    if not key.startswith(KEY_PREFIX):
        return None
    query = select(ApiKey).where(ApiKey.digest == _digest(key), ApiKey.revoked_at.is_(None))
    return session.scalars(query).first()


def note_key_used(session: Session, *, key_id: int, now: datetime,
                  every: timedelta) -> None:
    """Records that key `key_id` was used at `now`, unless that was recorded less than
    `every` ago (one write per key and period, not per request)."""
    session.execute(update(ApiKey).where(
        ApiKey.id == key_id,
        or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - every))
        .values(last_used_at=now))


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()

"""The people who sign in to the web console (`opsbot users`): their passwords, TOTP second
factor, recovery codes, and browser sessions.

Passwords are Argon2id hashes; the TOTP secret is sealed with the shared key like other
secrets (store.crypto); recovery codes and session cookies are random and high-entropy, so
only their SHA-256 is kept. Nothing here commits: the caller's transaction does.
"""

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from store.errors import DomainError, NotFound
from store.events import record_event
from store.models import ConsoleSession, RecoveryCode, User

LOCKOUT_AFTER = 5  # consecutive wrong passwords: a person mistypes a few, a guesser many more
LOCKOUT_FOR = timedelta(minutes=15)  # long enough to stall guessing, short enough to wait out
RECOVERY_CODES = 10  # shown once: enough to get by without the phone until `users reset-mfa`
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read from paper
RECOVERY_LENGTH = 10  # ~50 bits each: unguessable, so a plain SHA-256 is enough to keep
PASSWORD_MIN = 12  # characters; NIST SP 800-63B asks for 8 at least, we ask a little more
EMAIL_LIMIT = 150  # characters: the audit's actor column (160) holds `user:` and the email
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often, not per request
TOTP_ISSUER = "opsbot"  # the name authenticator apps show beside the code
TOTP_WINDOW = 1  # steps either side of now: a phone clock 30 s off still signs in


class UserRole(StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    AGENT = "agent"


MFA_REQUIRED = frozenset({UserRole.ADMIN, UserRole.SUPERVISOR})  # agents may enrol


class SignInOutcome(StrEnum):
    OK = "ok"
    WRONG = "wrong"  # unknown email or wrong password: the person is not told which
    LOCKED = "locked"
    DISABLED = "disabled"


@dataclass(frozen=True)
class HashCost:
    """Argon2id parameters (argon2-cffi's defaults, RFC 9106's second recommendation)."""

    time_cost: int = 3
    memory_cost: int = 65536  # KiB
    parallelism: int = 4


HASH_COST = HashCost()  # tests set a cheaper one; a changed cost rehashes at next sign-in


@dataclass(frozen=True)
class Enrolment:
    """A user just added or reset, with what is shown to them once."""

    user: User
    password: str | None  # set only when generated
    totp_uri: str | None
    recovery_codes: list[str]


@dataclass(frozen=True)
class SignIn:
    outcome: SignInOutcome
    user: User | None


# --- people -----------------------------------------------------------------------------------

def add_user(session: Session, *, email: str, role: str, by: str, agent_id: str | None = None,
             teams: Iterable[str] = (), password: str | None = None,
             now: datetime) -> Enrolment:
    """Adds a person with a TOTP secret and recovery codes; returns their Enrolment (the
    password only when generated here). Raises DomainError for a malformed or taken email,
    an unknown role, an agent without `agent_id`, or a password shorter than PASSWORD_MIN."""
    email, role = checked_email(email), checked_role(role, agent_id)
    if get_user(session, email=email) is not None:
        raise DomainError(f"there is a user {email} already (`opsbot users list`)")
    generated = secrets.token_urlsafe(18) if password is None else None
    user = User(email=email, role=role, agent_id=agent_id, teams=_teams(teams),
                password_hash=hasher().hash(checked_password(password or generated)),
                totp_secret=pyotp.random_base32(), failed_attempts=0, created_at=now,
                updated_at=now)
    session.add(user)
    session.flush()
    codes = _new_recovery_codes(session, user=user)
    record_event(session, task=None, actor=by, action="user_added", at=now,
                 details={"email": email, **_role_of(user)})
    return Enrolment(user=user, password=generated, totp_uri=totp_uri(user),
                     recovery_codes=codes)


def checked_email(email: str) -> str:
    """`email` trimmed and lowercased; raises DomainError unless it looks like one."""
    email = email.strip().lower()
    local, at, domain = email.partition("@")
    looks_right = (at and local and "@" not in domain and "." in domain.strip(".")
                   and not any(c.isspace() for c in email))
    if not looks_right or len(email) > EMAIL_LIMIT:
        raise DomainError(f"{email!r} is not an email address such as ana@example.com "
                          f"(at most {EMAIL_LIMIT} characters)")
    return email


def checked_role(role: str, agent_id: str | None) -> UserRole:
    """`role` as a UserRole; raises DomainError for an unknown role or an agent without id."""
    try:
        chosen = UserRole(role.strip().lower())
    except ValueError:
        raise DomainError(f"unknown role {role!r}; choose among "
                          f"{', '.join(UserRole)}") from None
    if chosen is UserRole.AGENT and not agent_id:
        raise DomainError("an agent must be one of rules.yaml's agents: give its id")
    return chosen


def checked_password(password: str) -> str:
    """`password`; raises DomainError when it is shorter than PASSWORD_MIN."""
    if len(password) < PASSWORD_MIN:
        raise DomainError(f"a password needs at least {PASSWORD_MIN} characters")
    return password


def _teams(teams: Iterable[str]) -> list[str]:
    return sorted({team.strip() for team in teams if team.strip()})


def _role_of(user: User) -> dict[str, Any]:
    return {"role": user.role, "agent": user.agent_id, "teams": list(user.teams)}


def list_users(session: Session) -> list[User]:
    """Every user, disabled ones too, oldest first."""
    return list(session.scalars(select(User).order_by(User.id)))


def get_user(session: Session, *, email: str) -> User | None:
    """The user with `email` (any case), or None."""
    return session.scalars(select(User).where(User.email == email.strip().lower())).first()


def get_user_by_id(session: Session, *, user_id: int) -> User | None:
    """The user `user_id`, or None."""
    return session.get(User, user_id)


def _existing(session: Session, email: str) -> User:
    user = get_user(session, email=email)
    if user is None:
        raise NotFound(f"there is no user {email.strip().lower()} (`opsbot users list`)")
    return user


def disable_user(session: Session, *, email: str, by: str, now: datetime) -> User:
    """Stops `email` from signing in and ends their sessions; returns the user (disabling
    twice keeps the first time). Raises NotFound."""
    user = _existing(session, email)
    if user.disabled_at is None:
        user.disabled_at, user.updated_at = now, now
        end_sessions_of(session, user_id=user.id, now=now)
        record_event(session, task=None, actor=by, action="user_disabled", at=now,
                     details={"email": user.email})
    return user


def reset_mfa(session: Session, *, email: str, by: str, now: datetime) -> Enrolment:
    """Gives `email` a new TOTP secret (enrolment pending again) and new recovery codes, and
    ends their sessions; returns the Enrolment to show them. Raises NotFound."""
    user = _existing(session, email)
    user.totp_secret, user.mfa_enrolled_at, user.totp_last_step = pyotp.random_base32(), None, None
    user.updated_at = now
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = _new_recovery_codes(session, user=user)
    end_sessions_of(session, user_id=user.id, now=now)
    record_event(session, task=None, actor=by, action="mfa_reset", at=now,
                 details={"email": user.email})
    return Enrolment(user=user, password=None, totp_uri=totp_uri(user), recovery_codes=codes)


def set_role(session: Session, *, email: str, role: str, teams: Iterable[str],
             agent_id: str | None, by: str, now: datetime) -> User:
    """Changes what `email` is (role, teams, agent); returns the user. Raises NotFound, or
    DomainError for an unknown role or an agent without `agent_id`."""
    user = _existing(session, email)
    before = _role_of(user)
    user.role, user.teams = checked_role(role, agent_id), _teams(teams)
    user.agent_id, user.updated_at = agent_id, now
    record_event(session, task=None, actor=by, action="role_changed", at=now,
                 details={"email": user.email, "from": before, "to": _role_of(user)})
    return user


# --- passwords --------------------------------------------------------------------------------

def hasher() -> PasswordHasher:
    """The Argon2id hasher of HASH_COST."""
    return _hasher(HASH_COST)


@cache
def _hasher(cost: HashCost) -> PasswordHasher:
    return PasswordHasher(time_cost=cost.time_cost, memory_cost=cost.memory_cost,
                          parallelism=cost.parallelism)


@cache
def _dummy_hash(cost: HashCost) -> str:
    # Verified against for unknown emails, so that they take as long as a wrong password.
    return _hasher(cost).hash(secrets.token_urlsafe(18))


def _verifies(password_hash: str, password: str) -> bool:
    try:
        return hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password(session: Session, *, email: str, password: str, now: datetime,
                   ip: str | None) -> SignIn:
    """The outcome of signing in with `email` and `password` (an unknown email is WRONG, and
    takes as long). LOCKOUT_AFTER wrong passwords in a row lock the account for LOCKOUT_FOR
    (that attempt is LOCKED); a right one resets the count. DISABLED only for the right
    password, so that disabled accounts cannot be listed by guessing."""
    user = get_user(session, email=email)
    if user is None:
        _verifies(_dummy_hash(HASH_COST), password)
        _failed(session, actor="console:unknown", reason="unknown_user", ip=ip, now=now)
        return SignIn(SignInOutcome.WRONG, None)
    if user.locked_until is not None and user.locked_until > now:
        _failed(session, actor=actor_of(user), reason="locked", ip=ip, now=now)
        return SignIn(SignInOutcome.LOCKED, user)
    right = _verifies(user.password_hash, password)
    if user.disabled_at is not None:
        _failed(session, actor=actor_of(user), reason="disabled", ip=ip, now=now)
        return SignIn(SignInOutcome.DISABLED if right else SignInOutcome.WRONG, user)
    if not right:
        return SignIn(_wrong_password(session, user=user, ip=ip, now=now), user)
    _signed_in(user, password=password, now=now)
    return SignIn(SignInOutcome.OK, user)


def actor_of(user: User) -> str:
    """How the audit trail names `user`."""
    return f"user:{user.email}"


def _failed(session: Session, *, actor: str, reason: str, ip: str | None, now: datetime) -> None:
    record_event(session, task=None, actor=actor, action="sign_in_failed", at=now,
                 details={"reason": reason, "ip": ip})


def _wrong_password(session: Session, *, user: User, ip: str | None, now: datetime,
                    reason: str = "wrong_password") -> SignInOutcome:
    """Counts a wrong password or code: LOCKOUT_AFTER in a row lock the account."""
    _failed(session, actor=actor_of(user), reason=reason, ip=ip, now=now)
    user.failed_attempts, user.updated_at = user.failed_attempts + 1, now
    if user.failed_attempts < LOCKOUT_AFTER:
        return SignInOutcome.WRONG
    # The count starts again: after the lock, LOCKOUT_AFTER more tries before the next one.
    user.failed_attempts, user.locked_until = 0, now + LOCKOUT_FOR
    record_event(session, task=None, actor=actor_of(user), action="sign_in_locked", at=now,
                 details={"ip": ip, "until": user.locked_until.isoformat()})
    return SignInOutcome.LOCKED


def _signed_in(user: User, *, password: str, now: datetime) -> None:
    if user.failed_attempts or user.locked_until is not None:
        user.failed_attempts, user.locked_until, user.updated_at = 0, None, now
    if hasher().check_needs_rehash(user.password_hash):
        user.password_hash, user.updated_at = hasher().hash(password), now


# --- second factor ----------------------------------------------------------------------------

def totp_uri(user: User) -> str:
    """The otpauth:// URI an authenticator app enrols from (issuer opsbot, name the email)."""
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email,
                                                         issuer_name=TOTP_ISSUER)


def qr_svg(uri: str) -> str:
    """`uri` as a QR code: an inline <svg> element (no XML declaration) to put in a page."""
    return segno.make(uri, error="m").svg_inline(scale=4)


def check_totp(session: Session, *, user: User, code: str, now: datetime) -> bool:
    """Whether `code` is the user's TOTP code at `now` (a step either side allowed) and its
    time step is later than the last one accepted; if so, that step is remembered so that
    the same code is refused the second time."""
    totp, code = pyotp.TOTP(user.totp_secret), code.strip().replace(" ", "")
    current = totp.timecode(now)
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        fresh = user.totp_last_step is None or step > user.totp_last_step
        # pyotp's verify(valid_window=1) does this loop too, but does not say which step
        # matched: the step is what a replay is refused by.
        if fresh and pyotp.utils.strings_equal(code, totp.generate_otp(step)):
            user.totp_last_step, user.updated_at = step, now
            return True
    return False


def check_code(session: Session, *, user: User, code: str, now: datetime,
               ip: str | None) -> SignInOutcome:
    """The outcome of the second factor: the TOTP code (the first one completes enrolment),
    or a recovery code. A wrong code counts toward the same lockout as a wrong password, so
    that whoever has the password cannot go on guessing codes; a locked account is LOCKED
    whatever the code."""
    if user.locked_until is not None and user.locked_until > now:
        _failed(session, actor=actor_of(user), reason="locked", ip=ip, now=now)
        return SignInOutcome.LOCKED
    code = code.strip()
    if user.mfa_enrolled_at is None:
        right = confirm_enrolment(session, user=user, code=code, now=now)
    elif code.isdigit():
        right = check_totp(session, user=user, code=code, now=now)
    else:
        right = use_recovery_code(session, user=user, code=code, now=now)
    if not right:
        return _wrong_password(session, user=user, ip=ip, now=now, reason="wrong_code")
    if user.failed_attempts:
        user.failed_attempts, user.updated_at = 0, now
    return SignInOutcome.OK


def confirm_enrolment(session: Session, *, user: User, code: str, now: datetime) -> bool:
    """Whether `code` is a good TOTP code (check_totp); the first good one completes the
    user's enrolment."""
    if not check_totp(session, user=user, code=code, now=now):
        return False
    if user.mfa_enrolled_at is None:
        user.mfa_enrolled_at = now
        record_event(session, task=None, actor=actor_of(user), action="mfa_enrolled", at=now,
                     details={})
    return True


def use_recovery_code(session: Session, *, user: User, code: str, now: datetime) -> bool:
    """Whether `code` is one of the user's unused recovery codes; it is used up if so."""
    query = (update(RecoveryCode)
             .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None),
                    RecoveryCode.digest == _digest(_normal_code(code)))
             .values(used_at=now).execution_options(synchronize_session=False))
    if session.execute(query).rowcount != 1:
        return False
    left = session.scalar(select(RecoveryCode.id).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)).limit(1))
    record_event(session, task=None, actor=actor_of(user), action="recovery_code_used", at=now,
                 details={"codes_left": left is not None})
    return True


def _new_recovery_codes(session: Session, *, user: User) -> list[str]:
    codes = ["".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
             for _ in range(RECOVERY_CODES)]
    session.add_all(RecoveryCode(user_id=user.id, digest=_digest(code)) for code in codes)
    half = RECOVERY_LENGTH // 2
    return [f"{code[:half]}-{code[half:]}" for code in codes]


def _normal_code(code: str) -> str:
    return "".join(c for c in code.lower() if c.isalnum())


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# --- sessions ---------------------------------------------------------------------------------

def open_session(session: Session, *, user: User, now: datetime,
                 mfa_passed: bool) -> tuple[str, ConsoleSession]:
    """A new console session of `user` and its cookie token (returned this once: only its
    digest is kept). Opened with `mfa_passed`, the sign-in is complete and audited."""
    token = secrets.token_urlsafe(32)
    row = ConsoleSession(digest=_digest(token), user_id=user.id, user=user,
                         csrf_token=secrets.token_urlsafe(32), created_at=now,
                         last_seen_at=now, mfa_passed=mfa_passed)
    session.add(row)
    session.flush()
    if mfa_passed:
        record_event(session, task=None, actor=actor_of(user), action="sign_in", at=now,
                     details={"mfa": False})
    return token, row


def find_session(session: Session, *, token: str, now: datetime, idle: timedelta,
                 absolute: timedelta) -> ConsoleSession | None:
    """The open session whose cookie is `token`, or None when unknown, ended, unused for
    longer than `idle`, older than `absolute`, or of a disabled user; one whose `mfa_passed`
    is False still awaits the second factor. Only reads: `touch_session` records the use."""
    row = session.scalars(select(ConsoleSession).where(
        ConsoleSession.digest == _digest(token))).first()
    if row is None or not _alive(row, now=now, idle=idle, absolute=absolute):
        return None
    return row


def needs_touch(console_session: ConsoleSession, *, now: datetime) -> bool:
    """Whether its last use is older than TOUCH_EVERY (then `touch_session` writes it): a
    page view is a read, and a write at most once a minute."""
    return now - console_session.last_seen_at >= TOUCH_EVERY


def touch_session(session: Session, *, session_id: int, now: datetime) -> None:
    """Moves the session's last use to `now` (idle time counts from it)."""
    session.execute(update(ConsoleSession).where(ConsoleSession.id == session_id)
                    .values(last_seen_at=now))


def _alive(row: ConsoleSession, *, now: datetime, idle: timedelta,
           absolute: timedelta) -> bool:
    return (row.ended_at is None and row.user.disabled_at is None
            and now - row.last_seen_at <= idle and now - row.created_at <= absolute)


def pass_mfa(session: Session, *, console_session: ConsoleSession,
             now: datetime) -> tuple[str, ConsoleSession]:
    """Completes a sign-in whose second factor was just given: the half-signed session ends
    and a new one (new cookie token, new CSRF token) replaces it, so that nothing seen before
    the code is worth anything after it. Returns the new token and session."""
    console_session.ended_at = now
    token, row = open_session(session, user=console_session.user, now=now, mfa_passed=False)
    row.mfa_passed = True
    record_event(session, task=None, actor=actor_of(row.user), action="sign_in", at=now,
                 details={"mfa": True})
    return token, row


def step_up(session: Session, *, console_session: ConsoleSession, now: datetime) -> None:
    """Records that the person just gave their code again (for a risky action)."""
    console_session.stepped_up_at = now


def end_session(session: Session, *, token: str, now: datetime) -> bool:
    """Ends the session whose cookie is `token` (signing out); returns whether one was open."""
    row = session.scalars(select(ConsoleSession).where(
        ConsoleSession.digest == _digest(token), ConsoleSession.ended_at.is_(None))).first()
    if row is None:
        return False
    row.ended_at = now
    record_event(session, task=None, actor=actor_of(row.user), action="sign_out", at=now,
                 details={})
    return True


def end_sessions_of(session: Session, *, user_id: int, now: datetime) -> int:
    """Ends every open session of user `user_id`; returns how many."""
    query = (update(ConsoleSession)
             .where(ConsoleSession.user_id == user_id, ConsoleSession.ended_at.is_(None))
             .values(ended_at=now).execution_options(synchronize_session="fetch"))
    return session.execute(query).rowcount

"""The console's people in store/: adding and managing them, passwords and lockout, TOTP and
recovery codes, browser sessions, and migration 0010."""

from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from alembic import command
from sqlalchemy import inspect, select, text

from store.db import Database, alembic_config, upgrade_database
from store.errors import DomainError, NotFound
from store.models import TaskEvent, User
from store.users import (
    LOCKOUT_AFTER,
    LOCKOUT_FOR,
    RECOVERY_CODES,
    HashCost,
    SignInOutcome,
    UserRole,
    add_user,
    check_code,
    check_password,
    check_totp,
    confirm_enrolment,
    disable_user,
    end_session,
    find_session,
    get_user,
    get_user_by_id,
    list_users,
    needs_touch,
    open_session,
    pass_mfa,
    qr_svg,
    reset_mfa,
    set_role,
    step_up,
    totp_uri,
    touch_session,
    use_recovery_code,
)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
IDLE, ABSOLUTE = timedelta(minutes=30), timedelta(hours=12)
CHEAP = HashCost(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch):
    """Argon2 at its cheapest: the suite checks behaviour, not cost."""
    monkeypatch.setattr("store.users.HASH_COST", CHEAP)


def _add(db, email="Ana@Example.com", role="admin", **kwargs):
    with db.transaction() as session:
        enrolment = add_user(session, email=email, role=role, by="cli", password=PASSWORD,
                             now=NOW, **kwargs)
        return enrolment.user.id, enrolment


def _events(db, action):
    with db.transaction(readonly=True) as session:
        return list(session.scalars(select(TaskEvent).where(TaskEvent.action == action)
                                    .order_by(TaskEvent.id)))


def _sign_in(db, password, *, at=NOW, email="ana@example.com"):
    with db.transaction() as session:
        return check_password(session, email=email, password=password, now=at,
                              ip="203.0.113.7").outcome


# --- people -----------------------------------------------------------------------------------

def test_add_list_and_find(db):
    user_id, enrolment = _add(db, teams=["sales", " ", "billing", "sales"])
    assert enrolment.password is None and len(enrolment.recovery_codes) == RECOVERY_CODES
    assert len(set(enrolment.recovery_codes)) == RECOVERY_CODES
    assert enrolment.totp_uri.startswith("otpauth://totp/opsbot:ana%40example.com?")
    assert "issuer=opsbot" in enrolment.totp_uri
    with db.transaction() as session:
        generated = add_user(session, email="bo@example.com", role="agent", agent_id="bo",
                             by="cli", now=NOW)
    assert len(generated.password) >= 24
    with db.transaction(readonly=True) as session:
        assert [u.email for u in list_users(session)] == ["ana@example.com", "bo@example.com"]
        ana = get_user(session, email=" ANA@example.COM ")
        assert (ana.id, ana.role, ana.teams, ana.mfa_enrolled_at) == (
            user_id, UserRole.ADMIN, ["billing", "sales"], None)
        assert get_user_by_id(session, user_id=user_id).email == "ana@example.com"
        assert get_user(session, email="nobody@example.com") is None
    [added, _] = _events(db, "user_added")
    assert (added.actor, added.details) == ("cli", {
        "email": "ana@example.com", "role": "admin", "agent": None,
        "teams": ["billing", "sales"]})
    assert PASSWORD not in str(added.details)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"email": "ana.example.com"}, "not an email address"),
    ({"email": "ana@@example.com"}, "not an email address"),
    ({"email": "ana@localhost"}, "not an email address"),
    ({"email": "an a@example.com"}, "not an email address"),
    ({"email": "a" * 140 + "@example.com"}, "at most 150 characters"),
    ({"role": "root"}, "unknown role 'root'"),
    ({"role": "agent"}, "an agent must be one of rules.yaml's agents"),
    ({"password": "too short"}, "at least 12 characters"),
])
def test_add_refuses_wrong_input(db, kwargs, message):
    arguments = {"email": "ana@example.com", "role": "admin", "password": PASSWORD, **kwargs}
    with db.transaction() as session, pytest.raises(DomainError, match=message):
        add_user(session, by="cli", now=NOW, **arguments)


def test_a_taken_email_is_refused_in_any_case(db):
    _add(db)
    with pytest.raises(DomainError, match="a user ana@example.com already"):
        _add(db, email="ANA@example.com")


def test_the_totp_secret_is_sealed_at_rest(db):
    user_id, _ = _add(db)
    with db.transaction(readonly=True) as session:
        secret = session.get(User, user_id).totp_secret
    with db.engine.connect() as connection:
        raw = connection.execute(text("SELECT totp_secret, password_hash FROM users")).one()
    assert len(secret) == 32 and secret not in raw.totp_secret
    assert raw.totp_secret.startswith("enc1:m.")
    assert raw.password_hash.startswith("$argon2id$") and PASSWORD not in raw.password_hash


def test_disable_ends_sessions_and_refuses_sign_in(db):
    user_id, _ = _add(db)
    with db.transaction() as session:
        token, _row = open_session(session, user=get_user(session, email="ana@example.com"),
                                   now=NOW, mfa_passed=True)
        disable_user(session, email="ana@example.com", by="cli", now=NOW)
        again = disable_user(session, email="ana@example.com", by="cli",
                             now=NOW + timedelta(hours=1))
        assert again.disabled_at == NOW
        assert find_session(session, token=token, now=NOW, idle=IDLE, absolute=ABSOLUTE) is None
        with pytest.raises(NotFound):
            disable_user(session, email="nobody@example.com", by="cli", now=NOW)
    assert _sign_in(db, PASSWORD) == SignInOutcome.DISABLED
    assert _sign_in(db, "not the password") == SignInOutcome.WRONG
    assert len(_events(db, "user_disabled")) == 1


def test_reset_mfa_gives_a_new_secret_and_codes(db):
    user_id, first = _add(db)
    with db.transaction() as session:
        user = session.get(User, user_id)
        old_secret = user.totp_secret
        assert confirm_enrolment(session, user=user, code=pyotp.TOTP(old_secret).at(NOW),
                                 now=NOW)
        token, _row = open_session(session, user=user, now=NOW, mfa_passed=True)
        second = reset_mfa(session, email="ana@example.com", by="cli", now=NOW)
        assert (user.mfa_enrolled_at, user.totp_last_step) == (None, None)
        assert user.totp_secret != old_secret and second.totp_uri != first.totp_uri
        assert set(second.recovery_codes).isdisjoint(first.recovery_codes)
        assert find_session(session, token=token, now=NOW, idle=IDLE, absolute=ABSOLUTE) is None
        assert not use_recovery_code(session, user=user, code=first.recovery_codes[0], now=NOW)
        assert use_recovery_code(session, user=user, code=second.recovery_codes[0], now=NOW)
    assert [e.actor for e in _events(db, "mfa_reset")] == ["cli"]


def test_set_role_records_from_and_to(db):
    _add(db, role="agent", agent_id="ana", teams=["sales"])
    with db.transaction() as session:
        user = set_role(session, email="ana@example.com", role="supervisor",
                        teams=["sales", "billing"], agent_id="ana", by="cli", now=NOW)
        assert (user.role, user.teams) == ("supervisor", ["billing", "sales"])
        with pytest.raises(DomainError, match="an agent must be"):
            set_role(session, email="ana@example.com", role="agent", teams=[], agent_id=None,
                     by="cli", now=NOW)
    [changed] = _events(db, "role_changed")
    assert changed.details["from"] == {"role": "agent", "agent": "ana", "teams": ["sales"]}
    assert changed.details["to"] == {"role": "supervisor", "agent": "ana",
                                     "teams": ["billing", "sales"]}


# --- passwords --------------------------------------------------------------------------------

def test_a_right_password_signs_in_and_resets_the_count(db):
    _add(db)
    assert _sign_in(db, "wrong password!") == SignInOutcome.WRONG
    assert _sign_in(db, PASSWORD) == SignInOutcome.OK
    with db.transaction(readonly=True) as session:
        assert get_user(session, email="ana@example.com").failed_attempts == 0
    [failed] = _events(db, "sign_in_failed")
    assert (failed.actor, failed.details) == ("user:ana@example.com",
                                              {"reason": "wrong_password", "ip": "203.0.113.7"})


def test_five_wrong_passwords_lock_for_fifteen_minutes(db):
    _add(db)
    outcomes = [_sign_in(db, f"wrong password {n}") for n in range(LOCKOUT_AFTER)]
    assert outcomes == [SignInOutcome.WRONG] * (LOCKOUT_AFTER - 1) + [SignInOutcome.LOCKED]
    assert _sign_in(db, PASSWORD, at=NOW + LOCKOUT_FOR - timedelta(seconds=1)) == (
        SignInOutcome.LOCKED)
    assert _sign_in(db, PASSWORD, at=NOW + LOCKOUT_FOR + timedelta(seconds=1)) == (
        SignInOutcome.OK)
    with db.transaction(readonly=True) as session:
        user = get_user(session, email="ana@example.com")
        assert (user.failed_attempts, user.locked_until) == (0, None)
    [locked] = _events(db, "sign_in_locked")
    assert locked.details["until"] == (NOW + LOCKOUT_FOR).isoformat()


def test_an_unknown_email_is_wrong_and_not_written_down(db):
    _add(db)
    assert _sign_in(db, PASSWORD, email="Ann@Example.com") == SignInOutcome.WRONG
    [failed] = _events(db, "sign_in_failed")
    assert (failed.actor, failed.details["reason"]) == ("console:unknown", "unknown_user")
    assert "ann@" not in f"{failed.actor}{failed.details}".lower()


def test_a_changed_cost_rehashes_at_the_next_sign_in(db, monkeypatch):
    user_id, _ = _add(db)
    monkeypatch.setattr("store.users.HASH_COST", HashCost(time_cost=2, memory_cost=16,
                                                          parallelism=1))
    assert _sign_in(db, PASSWORD) == SignInOutcome.OK
    with db.transaction(readonly=True) as session:
        assert "m=16,t=2,p=1" in session.get(User, user_id).password_hash
    assert _sign_in(db, PASSWORD) == SignInOutcome.OK


# --- second factor ----------------------------------------------------------------------------

def test_totp_good_replayed_and_wrong(db):
    user_id, _ = _add(db)
    with db.transaction() as session:
        user = session.get(User, user_id)
        totp = pyotp.TOTP(user.totp_secret)
        assert not check_totp(session, user=user, code="000000" if totp.at(NOW) != "000000"
                              else "111111", now=NOW)
        assert check_totp(session, user=user, code=totp.at(NOW), now=NOW)
        assert not check_totp(session, user=user, code=totp.at(NOW), now=NOW + timedelta(
            seconds=10)), "the same code is refused the second time"
        earlier = totp.at(NOW - timedelta(seconds=30))
        assert not check_totp(session, user=user, code=earlier, now=NOW), "an older step"
        later = NOW + timedelta(seconds=30)
        assert check_totp(session, user=user, code=totp.at(later)[:3] + " " + totp.at(later)[3:],
                          now=later + timedelta(seconds=30)), "a step behind is accepted"
        assert not check_totp(session, user=user, code=totp.at(NOW + timedelta(minutes=2)),
                              now=NOW + timedelta(seconds=60))


def test_the_first_good_code_completes_enrolment(db):
    user_id, enrolment = _add(db)
    with db.transaction() as session:
        user = session.get(User, user_id)
        assert totp_uri(user) == enrolment.totp_uri
        code = pyotp.TOTP(user.totp_secret).at(NOW)
        assert not confirm_enrolment(session, user=user, code="12345", now=NOW)
        assert user.mfa_enrolled_at is None
        assert confirm_enrolment(session, user=user, code=code, now=NOW)
        later = NOW + timedelta(minutes=5)
        assert confirm_enrolment(session, user=user,
                                 code=pyotp.TOTP(user.totp_secret).at(later), now=later)
        assert user.mfa_enrolled_at == NOW
    assert [e.actor for e in _events(db, "mfa_enrolled")] == ["user:ana@example.com"]


def test_recovery_codes_work_once(db):
    user_id, enrolment = _add(db)
    first, second = enrolment.recovery_codes[:2]
    with db.transaction() as session:
        user = session.get(User, user_id)
        assert use_recovery_code(session, user=user, code=f" {first.upper()} ", now=NOW)
        assert not use_recovery_code(session, user=user, code=first, now=NOW)
        assert use_recovery_code(session, user=user, code=second.replace("-", ""), now=NOW)
        assert not use_recovery_code(session, user=user, code="aaaaa-aaaaa", now=NOW)
    assert len(_events(db, "recovery_code_used")) == 2


def test_wrong_codes_lock_the_account_as_wrong_passwords_do(db):
    user_id, enrolment = _add(db)
    with db.transaction() as session:
        user = session.get(User, user_id)
        totp = pyotp.TOTP(user.totp_secret)
        assert check_code(session, user=user, code=totp.at(NOW), now=NOW,
                          ip=None) is SignInOutcome.OK  # the first good code enrols
        assert user.mfa_enrolled_at == NOW
        wrong = "000000" if totp.at(NOW) != "000000" else "111111"
        outcomes = [check_code(session, user=user, code=wrong, now=NOW, ip="10.0.0.1")
                    for _ in range(LOCKOUT_AFTER)]
        assert outcomes == [SignInOutcome.WRONG] * (LOCKOUT_AFTER - 1) + [SignInOutcome.LOCKED]
        later = NOW + timedelta(seconds=30)
        assert check_code(session, user=user, code=totp.at(later), now=later,
                          ip=None) is SignInOutcome.LOCKED  # even the right code
        unlocked = NOW + LOCKOUT_FOR + timedelta(seconds=1)
        assert check_code(session, user=user, code=enrolment.recovery_codes[0], now=unlocked,
                          ip=None) is SignInOutcome.OK
        assert user.failed_attempts == 0
    assert [e.details["reason"] for e in _events(db, "sign_in_failed")] == (
        ["wrong_code"] * LOCKOUT_AFTER + ["locked"])
    assert len(_events(db, "sign_in_locked")) == 1


def test_qr_svg_is_an_inline_svg_element():
    svg = qr_svg("otpauth://totp/opsbot:ana%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=opsbot")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>") and "<?xml" not in svg


# --- sessions ---------------------------------------------------------------------------------

def _session_of(db, *, mfa_passed=True):
    with db.transaction() as session:
        user = get_user(session, email="ana@example.com")
        token, row = open_session(session, user=user, now=NOW, mfa_passed=mfa_passed)
        return token, row.id, row.csrf_token


def _find(db, token, at):
    """The session as a request at `at` finds it, then records the use as the console does."""
    with db.transaction(readonly=True) as session:
        row = find_session(session, token=token, now=at, idle=IDLE, absolute=ABSOLUTE)
        found = None if row is None else (row.id, row.last_seen_at, row.mfa_passed)
        due = row is not None and needs_touch(row, now=at)
    if due:
        with db.transaction() as session:
            touch_session(session, session_id=found[0], now=at)
    return found


def test_a_session_is_found_by_its_token_only(db):
    _add(db)
    token, session_id, _csrf = _session_of(db)
    assert _find(db, token, NOW) == (session_id, NOW, True)
    assert _find(db, token + "x", NOW) is None
    with db.engine.connect() as connection:
        stored = connection.execute(text("SELECT digest FROM console_sessions")).scalar()
    assert token not in stored and len(stored) == 64
    assert [e.actor for e in _events(db, "sign_in")] == ["user:ana@example.com"]


def test_last_seen_is_touched_at_most_once_a_minute(db):
    _add(db)
    token, session_id, _csrf = _session_of(db)
    assert _find(db, token, NOW + timedelta(seconds=59))[1] == NOW
    assert _find(db, token, NOW + timedelta(seconds=61))[1] == NOW  # then written
    assert _find(db, token, NOW + timedelta(seconds=62))[1] == NOW + timedelta(seconds=61)


def test_idle_and_absolute_expiry(db):
    _add(db)
    token, _id, _csrf = _session_of(db)
    assert _find(db, token, NOW + IDLE + timedelta(seconds=1)) is None
    kept, _id, _csrf = _session_of(db)
    at = NOW
    while at + IDLE < NOW + ABSOLUTE:  # used every 25 minutes: never idle
        at += timedelta(minutes=25)
        assert _find(db, kept, at) is not None
    assert _find(db, kept, NOW + ABSOLUTE + timedelta(seconds=1)) is None


def test_passing_mfa_rotates_the_csrf_token(db):
    _add(db)
    token, _id, csrf = _session_of(db, mfa_passed=False)
    assert _events(db, "sign_in") == []
    with db.transaction() as session:
        row = find_session(session, token=token, now=NOW, idle=IDLE, absolute=ABSOLUTE)
        assert not row.mfa_passed
        new_token, new_row = pass_mfa(session, console_session=row, now=NOW)
        fresh = new_row.csrf_token
        step_up(session, console_session=new_row, now=NOW + timedelta(minutes=1))
    assert fresh != csrf and len(fresh) >= 43
    assert new_token != token
    with db.transaction(readonly=True) as session:
        assert find_session(session, token=token, now=NOW, idle=IDLE, absolute=ABSOLUTE) is None
        row = find_session(session, token=new_token, now=NOW, idle=IDLE, absolute=ABSOLUTE)
        assert (row.mfa_passed, row.csrf_token, row.stepped_up_at) == (
            True, fresh, NOW + timedelta(minutes=1))
    assert [e.details for e in _events(db, "sign_in")] == [{"mfa": True}]
    assert _events(db, "sign_out") == []  # the half session ends without a sign-out


def test_signing_out_ends_the_session(db):
    _add(db)
    token, _id, _csrf = _session_of(db)
    other, _id, _csrf = _session_of(db)
    with db.transaction() as session:
        assert end_session(session, token=token, now=NOW)
        assert not end_session(session, token=token, now=NOW)
    assert _find(db, token, NOW) is None and _find(db, other, NOW) is not None
    assert [e.actor for e in _events(db, "sign_out")] == ["user:ana@example.com"]


# --- migration --------------------------------------------------------------------------------

def test_migration_0010_goes_down_and_up(database_url):
    config = alembic_config(database_url)
    command.downgrade(config, "0009")
    database = Database(database_url)
    tables = set(inspect(database.engine).get_table_names())
    database.dispose()
    assert not tables & {"users", "recovery_codes", "console_sessions"}
    upgrade_database(database_url)
    database = Database(database_url)
    tables = set(inspect(database.engine).get_table_names())
    database.dispose()
    assert {"users", "recovery_codes", "console_sessions"} <= tables

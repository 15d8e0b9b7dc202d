"""Signing in to the console over HTTP: password then code, enrolment, refusals, lockout,
sessions, CSRF, step-up and sign-out (the browser tests walk the same path in Chromium)."""

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from bot.core import tunables
from store.models import ConsoleSession, TaskEvent
from store.users import LOCKOUT_AFTER, get_user
from tests.console_kit import PASSWORD, add_person, csrf_of, sign_in, signed_in


def client(api) -> httpx.Client:
    return httpx.Client(base_url=api.url + "/console", timeout=20)


def actions(api) -> list[tuple[str, str]]:
    with api.db.transaction(readonly=True) as session:
        rows = session.scalars(select(TaskEvent).where(TaskEvent.task_id.is_(None))
                               .order_by(TaskEvent.id))
        return [(row.action, row.actor) for row in rows]


def password_step(http: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return http.post("/login", data={"email": email, "password": password,
                                     "csrf_token": csrf_of(http.get("/login"))})


def test_a_page_without_a_session_sends_to_sign_in_and_back(console):
    person = add_person(console.db, "ines@example.com", "admin")
    with client(console) as http:
        answer = http.get("/kpis?period=30d")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/login?next=/console/kpis%3Fperiod%3D30d"
        page = http.get(console.url + answer.headers["location"])
        assert 'name="next" value="/console/kpis?period=30d"' in page.text
        http.post("/login", data={"email": person.email, "password": PASSWORD,
                                  "csrf_token": csrf_of(page), "next": "/console/kpis"})
        done = http.post("/mfa", data={"code": person.code(),
                                       "csrf_token": csrf_of(http.get("/mfa")),
                                       "next": "/console/kpis"})
        assert done.headers["location"] == "/console/kpis"


def test_password_then_code_signs_in_with_a_fresh_session(console):
    person = add_person(console.db, "ines@example.com", "admin")
    with client(console) as http:
        assert password_step(http, person.email).headers["location"] == "/console/mfa"
        half = http.cookies["opsbot_session"]
        assert http.get("/").status_code == 303  # the code is still missing
        done = http.post("/mfa", data={"code": person.code(),
                                       "csrf_token": csrf_of(http.get("/mfa"))})
        assert done.status_code == 303 and done.headers["location"] == "/console/"
        assert http.cookies["opsbot_session"] != half  # no fixation across the second factor
        assert "Open tasks" in http.get("/").text
    assert ("sign_in", "user:ines@example.com") in actions(console)


def test_cookies_are_http_only_and_same_site(console):
    person = add_person(console.db, "ines@example.com", "admin")
    with client(console) as http:
        answer = password_step(http, person.email)
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/console" in cookie
        assert "secure" not in cookie  # plain HTTP here; HTTPS or an https PUBLIC_URL add it


@pytest.mark.parametrize("password", ["wrong password!", PASSWORD])
def test_wrong_password_or_unknown_email_say_the_same(console, password):
    add_person(console.db, "ines@example.com", "admin")
    email = "ines@example.com" if password != PASSWORD else "nobody@example.com"
    with client(console) as http:
        answer = password_step(http, email, password)
        assert answer.status_code == 401
        assert "Wrong email or password." in answer.text
        assert "opsbot_session" not in http.cookies


def test_five_wrong_passwords_lock_the_account(console):
    person = add_person(console.db, "ines@example.com", "admin")
    with client(console) as http:
        for _ in range(4):
            assert password_step(http, person.email, "wrong password!").status_code == 401
        locked = password_step(http, person.email, "wrong password!")
        assert "locked" in locked.text
        assert "locked" in password_step(http, person.email).text  # even the right one


def test_a_wrong_code_is_refused_and_audited(console):
    person = add_person(console.db, "ines@example.com", "admin")
    with client(console) as http:
        password_step(http, person.email)
        wrong = "000000" if person.code() != "000000" else "111111"
        answer = http.post("/mfa", data={"code": wrong, "csrf_token": csrf_of(http.get("/mfa"))})
        assert answer.status_code == 401 and "not right" in answer.text
        assert http.get("/").status_code == 303
    assert ("sign_in_failed", "user:ines@example.com") in actions(console)


def test_too_many_wrong_codes_end_the_half_session_and_lock_the_account(console):
    person = add_person(console.db, "ines@example.com", "admin")
    with client(console) as http:
        password_step(http, person.email)
        token = csrf_of(http.get("/mfa"))
        for _ in range(LOCKOUT_AFTER):
            answer = http.post("/mfa", data={"code": "abcdefghij", "csrf_token": token})
        assert answer.status_code == 303 and "/login" in answer.headers["location"]
        assert http.post("/mfa", data={"code": person.code(),
                                       "csrf_token": token}).status_code == 303
        assert http.get("/").status_code == 303  # still signed out
        # wrong codes lock the account as wrong passwords do: the password alone is refused
        assert "locked" in password_step(http, person.email).text


def test_first_sign_in_enrols_with_a_qr_code(console):
    person = add_person(console.db, "ines@example.com", "supervisor", teams=("logistics",),
                        enrolled=False)
    with client(console) as http:
        password_step(http, person.email)
        page = http.get("/mfa")
        assert "Set up your authenticator" in page.text and "<svg" in page.text
        assert person.secret in page.text
        http.post("/mfa", data={"code": person.code(), "csrf_token": csrf_of(page)})
        assert http.get("/").status_code == 200
    with console.db.transaction(readonly=True) as session:
        assert get_user(session, email=person.email).mfa_enrolled_at is not None
    assert ("mfa_enrolled", "user:ines@example.com") in actions(console)


def test_an_agent_without_mfa_signs_in_with_the_password(console):
    person = add_person(console.db, "ana@example.com", "agent", agent="ana", enrolled=False)
    with client(console) as http:
        answer = password_step(http, person.email)
        assert answer.headers["location"] == "/console/"
        assert http.get("/").status_code == 200


def test_a_recovery_code_works_once(console):
    person = add_person(console.db, "ines@example.com", "admin")
    answers = []
    for _ in range(2):
        with client(console) as http:
            password_step(http, person.email)
            answer = http.post("/mfa", data={"code": person.recovery_codes[0].upper(),
                                             "csrf_token": csrf_of(http.get("/mfa"))})
            answers.append(answer.status_code)
    assert answers == [303, 401]
    assert ("recovery_code_used", "user:ines@example.com") in actions(console)


def test_a_forged_post_is_refused_and_audited(console):
    person = add_person(console.db, "ines@example.com", "admin")
    with signed_in(console.url, person) as http:
        answer = http.post("/logout", data={"csrf_token": "forged"})
        assert answer.status_code == 403 and "did not come from the console" in answer.text
        assert http.get("/").status_code == 200  # still signed in: nothing happened
    assert ("console_csrf_refused", "console:ines@example.com") in actions(console)


def test_the_sign_in_form_needs_its_own_token(console):
    add_person(console.db, "ines@example.com", "admin")
    with client(console) as http:
        answer = http.post("/login", data={"email": "ines@example.com", "password": PASSWORD,
                                           "csrf_token": "forged"})
        assert answer.status_code == 403


def test_sign_out_ends_the_session(console):
    person = add_person(console.db, "ines@example.com", "admin")
    http = sign_in(console.url, person)
    cookie = http.cookies["opsbot_session"]
    page = http.get("/")
    assert http.post("/logout", data={"csrf_token": csrf_of(page)}).status_code == 303
    with client(console) as other:
        other.cookies.set("opsbot_session", cookie)
        assert other.get("/").status_code == 303
    assert ("sign_out", "user:ines@example.com") in actions(console)


def test_an_idle_session_ends(console):
    person = add_person(console.db, "ines@example.com", "admin")
    with signed_in(console.url, person) as http:
        with console.db.transaction() as session:
            row = session.scalars(select(ConsoleSession).where(
                ConsoleSession.ended_at.is_(None), ConsoleSession.mfa_passed.is_(True))).one()
            row.last_seen_at -= tunables.CONSOLE_IDLE + timedelta(seconds=1)
        assert http.get("/").status_code == 303


def test_next_never_leaves_the_console(console):
    person = add_person(console.db, "ines@example.com", "admin")
    with client(console) as http:
        for target in ("https://evil.example/console/", "//evil.example/console/", "/api/v1/"):
            page = http.get("/login", params={"next": target})
            assert 'name="next" value="/console/"' in page.text
        http.post("/login", data={"email": person.email, "password": PASSWORD,
                                  "csrf_token": csrf_of(http.get("/login")),
                                  "next": "https://evil.example/"})
        done = http.post("/mfa", data={"code": person.code(),
                                       "csrf_token": csrf_of(http.get("/mfa")),
                                       "next": "//evil.example/"})
        assert done.headers["location"] == "/console/"


def test_sign_in_attempts_are_limited_per_address(console, monkeypatch):
    monkeypatch.setattr(tunables, "CONSOLE_SIGN_IN_LIMIT", 3)
    monkeypatch.setattr(tunables, "CONSOLE_SIGN_IN_WINDOW", 10**9)  # no edge mid-test
    add_person(console.db, "ines@example.com", "admin")
    with client(console) as http:
        answers = [password_step(http, f"x{n}@example.com", "whatever12345").status_code
                   for n in range(4)]
    assert answers == [401, 401, 401, 429]

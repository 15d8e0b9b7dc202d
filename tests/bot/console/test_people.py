"""The People screen over HTTP, signed in for real: admins only, every change behind CSRF and
a re-entered code (step-up), done and audited as the admin."""

import re

import httpx
import pytest

from store.users import get_user
from tests.console_kit import Person, add_person, events, signed_in, step_up, submit

PEOPLE = "/console/users"


def user_id(api, email: str) -> int:
    with api.db.transaction(readonly=True) as session:
        return get_user(session, email=email).id


def user_state(api, email: str) -> tuple:
    with api.db.transaction(readonly=True) as session:
        user = get_user(session, email=email)
        return (user.role, user.agent_id, list(user.teams), user.disabled_at is not None,
                user.mfa_enrolled_at is not None)


def said(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    location = httpx.URL(answer.headers["location"])
    assert location.path == PEOPLE
    return location.params.get("said") or "failed: " + location.params["failed"]


@pytest.fixture
def admin(console) -> Person:
    return add_person(console.db, "alba@example.com", "admin", agent="alba")


@pytest.fixture
def ana(console) -> Person:
    return add_person(console.db, "ana@example.com", "agent", agent="ana")


def test_only_admins_see_the_people_screen(console, admin, ana):
    marta = add_person(console.db, "marta@example.com", "supervisor", agent="marta",
                       teams=("logistics",))
    with signed_in(console.url, marta) as http:
        assert http.get("/users").status_code == 403
        assert f'{PEOPLE}"' not in http.get("/").text  # not in the nav
        path = f"/users/{user_id(console, ana.email)}/disable"
        assert submit(console, http, path, page="/console/").status_code == 403
    assert user_state(console, ana.email)[3] is False
    with signed_in(console.url, admin) as http:
        page = http.get("/users")
        assert page.status_code == 200 and f'{PEOPLE}" aria-current="page"' in page.text
        assert all(email in page.text for email in (admin.email, ana.email, marta.email))
        assert "opsbot users add" in page.text


def test_a_change_asks_for_the_code_then_works_and_ends_their_sessions(console, admin, ana):
    path = f"/users/{user_id(console, ana.email)}/disable"
    with signed_in(console.url, ana) as theirs, signed_in(console.url, admin) as http:
        asked = submit(console, http, path, page=PEOPLE)
        assert asked.status_code == 303
        assert asked.headers["location"] == "/console/step-up?next=/console/users"
        assert user_state(console, ana.email)[3] is False
        step_up(http, admin, PEOPLE)
        assert "disabled" in said(submit(console, http, path, page=PEOPLE))
        assert user_state(console, ana.email)[3] is True
        assert theirs.get("/").headers["location"].startswith("/console/login")
    assert [(e.actor, e.details["email"]) for e in events(console, "user_disabled")] == [
        ("agent:alba", ana.email)]


def test_a_role_change_is_checked_against_the_rules(console, admin, ana):
    path = f"/users/{user_id(console, ana.email)}/role"
    with signed_in(console.url, admin) as http:
        step_up(http, admin, PEOPLE)
        unknown_team = {"role": "supervisor", "agent": "marta", "teams": "logistics, nope"}
        assert "nope" in said(submit(console, http, path, unknown_team, page=PEOPLE))
        unknown_agent = {"role": "agent", "agent": "ghost"}
        assert "ghost" in said(submit(console, http, path, unknown_agent, page=PEOPLE))
        no_agent = {"role": "agent"}
        assert said(submit(console, http, path, no_agent, page=PEOPLE)).startswith("failed")
        assert user_state(console, ana.email)[:3] == ("agent", "ana", [])
        done = {"role": "supervisor", "agent": "marta", "teams": "logistics"}
        assert "supervisor" in said(submit(console, http, path, done, page=PEOPLE))
    assert user_state(console, ana.email)[:3] == ("supervisor", "marta", ["logistics"])
    [event] = events(console, "role_changed")
    assert event.actor == "agent:alba" and event.details["to"]["role"] == "supervisor"


def test_reset_mfa_shows_the_new_enrolment_once(console, admin, ana):
    path = f"/users/{user_id(console, ana.email)}/reset-mfa"
    with signed_in(console.url, admin) as http:
        step_up(http, admin, PEOPLE)
        page = submit(console, http, path, page=PEOPLE)
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert "<svg" in page.text and "otpauth://totp/" in page.text
        assert len(re.findall(r"<li><code>[a-z2-9]{5}-[a-z2-9]{5}</code></li>", page.text)) == 10
        assert "Recovery codes" not in http.get("/users").text
        again = http.get(path)  # a reload, or a step-up coming back to this address
        assert again.status_code == 303 and again.headers["location"] == PEOPLE
    assert user_state(console, ana.email)[4] is False  # enrols again at the next sign-in
    assert [event.actor for event in events(console, "mfa_reset")] == ["agent:alba"]


def test_an_admin_cannot_disable_themself_or_drop_their_admin_role(console, admin):
    own = user_id(console, admin.email)
    with signed_in(console.url, admin) as http:
        step_up(http, admin, PEOPLE)
        assert "yourself" in said(submit(console, http, f"/users/{own}/disable", page=PEOPLE))
        demoted = {"role": "agent", "agent": "alba"}
        refused = submit(console, http, f"/users/{own}/role", demoted, page=PEOPLE)
        assert "own admin role" in said(refused)
        assert http.get("/users").status_code == 200  # still signed in, still an admin
    assert user_state(console, admin.email)[0] == "admin"
    assert events(console, "user_disabled") == [] and events(console, "role_changed") == []


def test_a_form_without_the_csrf_token_is_refused(console, admin, ana):
    path = f"/users/{user_id(console, ana.email)}/disable"
    with signed_in(console.url, admin) as http:
        step_up(http, admin, PEOPLE)
        assert submit(console, http, path, page=PEOPLE, token=False).status_code == 403
    assert user_state(console, ana.email)[3] is False
    assert [event.actor for event in events(console, "console_csrf_refused")] == ["agent:alba"]

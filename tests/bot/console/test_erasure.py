"""Erasing a task's customer from the console, signed in for real: admins only, behind CSRF
and step-up, as `opsbot contacts erase` does it (same store function, same audit)."""

import httpx
import pytest

from store.gdpr import ERASED_ACTION
from store.types import utcnow
from tests.console_kit import add_person, events, signed_in, step_up, submit
from tests.notifiers.helpers import make_task

NAME = "Carmen Ruiz"  # make_task's customer


@pytest.fixture
def ref(console) -> str:
    with console.db.transaction() as session:
        task = make_task(session)
        task.contact.last_inbound_at = utcnow()
        return task.ref


@pytest.fixture
def admin(console):
    return add_person(console.db, "alba@example.com", "admin", agent="alba")


def page_of(ref: str) -> str:
    return f"/console/tasks/{ref}"


def location(answer: httpx.Response) -> httpx.URL:
    assert answer.status_code == 303, answer.text
    return httpx.URL(answer.headers["location"])


def test_only_admins_see_the_form_and_may_erase(console, ref, admin):
    marta = add_person(console.db, "marta@example.com", "supervisor", agent="marta",
                       teams=("logistics",))
    with signed_in(console.url, marta) as http:
        assert NAME in http.get(f"/tasks/{ref}").text
        assert "/erase" not in http.get(f"/tasks/{ref}").text
        erase = submit(console, http, f"/tasks/{ref}/erase", {"reason": "asked"},
                       page=page_of(ref))
        assert erase.status_code == 403
    with signed_in(console.url, admin) as http:
        assert f'/console/tasks/{ref}/erase"' in http.get(f"/tasks/{ref}").text
    assert events(console, ERASED_ACTION) == []


def test_erasure_asks_for_the_code_then_erases_and_audits(console, ref, admin):
    with signed_in(console.url, admin) as http:
        asked = submit(console, http, f"/tasks/{ref}/erase", {"reason": "GDPR request 42"},
                       page=page_of(ref))
        assert str(location(asked)) == f"/console/step-up?next=/console/tasks/{ref}"
        assert NAME in http.get(f"/tasks/{ref}").text
        step_up(http, admin, page_of(ref))
        done = submit(console, http, f"/tasks/{ref}/erase", {"reason": "GDPR request 42"},
                      page=page_of(ref))
        assert location(done).path == page_of(ref)
        assert "erased for good" in location(done).params["said"]
        after = http.get(f"/tasks/{ref}").text
        assert NAME not in after
        assert "<dt>Erased</dt>" in after and "/erase" not in after  # nothing left to erase
        again = submit(console, http, f"/tasks/{ref}/erase", {"reason": "twice"},
                       page=page_of(ref))
        assert "no customer left" in location(again).params["failed"]
    [event] = events(console, ERASED_ACTION)
    assert event.actor == "agent:alba" and event.details["reason"] == "GDPR request 42"


def test_erasure_needs_a_reason(console, ref, admin):
    with signed_in(console.url, admin) as http:
        step_up(http, admin, page_of(ref))
        blank = submit(console, http, f"/tasks/{ref}/erase", {"reason": "  "},
                       page=page_of(ref))
        assert "why" in location(blank).params["failed"]
        assert NAME in http.get(f"/tasks/{ref}").text
    assert events(console, ERASED_ACTION) == []


def test_erasure_without_the_csrf_token_is_refused(console, ref, admin):
    with signed_in(console.url, admin) as http:
        step_up(http, admin, page_of(ref))
        forged = submit(console, http, f"/tasks/{ref}/erase", {"reason": "x"},
                        page=page_of(ref), token=False)
        assert forged.status_code == 403
        assert NAME in http.get(f"/tasks/{ref}").text
    assert events(console, ERASED_ACTION) == []
    assert [event.actor for event in events(console, "console_csrf_refused")] == ["agent:alba"]

"""The console for tests: a running opsbot (as `running_api`), people who may sign in, their
codes, and a signed-in HTTP client. Shared by the HTTP tests (tests/bot/console) and the
browser tests (tests/browser)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pyotp
from sqlalchemy import select

from store.db import Database
from store.models import TaskEvent
from store.types import utcnow
from store.users import HashCost, add_user, confirm_enrolment, get_user

CHEAP = HashCost(time_cost=1, memory_cost=8, parallelism=1)  # tests need no real cost
PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class Person:
    email: str
    password: str
    secret: str  # the TOTP secret their authenticator app holds
    recovery_codes: tuple[str, ...] = ()

    def code(self, ahead: int = 0) -> str:
        """The code their app shows now, or `ahead` steps later (a code is accepted once:
        a second sign-in within 30 s needs the next one; the window admits one step)."""
        return pyotp.TOTP(self.secret).at(time.time() + 30 * ahead)


def add_person(db: Database, email: str, role: str, *, agent: str | None = None,
               teams: tuple[str, ...] = (), enrolled: bool = True) -> Person:
    """A console user with PASSWORD; `enrolled` confirms their authenticator beforehand."""
    with db.transaction() as session:
        enrolment = add_user(session, email=email, role=role, agent_id=agent, teams=teams,
                             password=PASSWORD, by="test", now=utcnow())
        secret = enrolment.user.totp_secret
    person = Person(email, PASSWORD, secret, tuple(enrolment.recovery_codes))
    if enrolled:
        with db.transaction() as session:
            user = get_user(session, email=email)
            assert confirm_enrolment(session, user=user, code=person.code(-1), now=utcnow())
    return person


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token of the first form on `page`."""
    match = CSRF.search(page.text)
    assert match, page.text[:500]
    return match.group(1)


def sign_in(base_url: str, person: Person, *, ahead: int = 0) -> httpx.Client:
    """A client signed in as `person` (password, then their code)."""
    client = httpx.Client(base_url=base_url + "/console", timeout=20)
    form = client.get("/login")
    answer = client.post("/login", data={"email": person.email, "password": person.password,
                                         "csrf_token": csrf_of(form)})
    assert answer.status_code == 303, answer.text
    code_form = client.get("/mfa")
    answer = client.post("/mfa", data={"code": person.code(ahead),
                                       "csrf_token": csrf_of(code_form)})
    assert answer.status_code == 303, answer.text
    return client


@contextmanager
def signed_in(base_url: str, person: Person) -> Iterator[httpx.Client]:
    client = sign_in(base_url, person)
    try:
        yield client
    finally:
        client.close()


def submit(api, http: httpx.Client, path: str, data: dict | None = None, *,
           page: str, token: bool = True) -> httpx.Response:
    """A form of `page` posted as the browser does: the session's CSRF token, and the page
    as Referer (where a step-up brings the person back)."""
    form = {**(data or {}), **({"csrf_token": csrf_of(http.get(page.removeprefix("/console")))}
                                if token else {})}
    return http.post(path, data=form, headers={"Referer": api.url + page})


def step_up(http: httpx.Client, person: Person, page: str) -> None:
    """Re-enters the person's code on the step-up page and lands back on `page` (the next
    code: the one of the sign-in is spent)."""
    form = http.get("/step-up", params={"next": page})
    answer = http.post("/step-up", data={"code": person.code(ahead=1), "next": page,
                                         "csrf_token": csrf_of(form)})
    assert answer.status_code == 303 and answer.headers["location"] == page, answer.text


def events(api, action: str) -> list[TaskEvent]:
    with api.db.transaction(readonly=True) as session:
        found = list(session.scalars(select(TaskEvent).where(
            TaskEvent.task_id.is_(None), TaskEvent.action == action).order_by(TaskEvent.id)))
        session.expunge_all()
        return found

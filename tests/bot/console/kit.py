"""The real app with its console, a signed-in person of any role (the `signed_in` dependency
overridden on the console sub-app), and readers of what the tests check."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.app import create_app
from bot.console.auth import Viewer, act_as, signed_in
from bot.core.services import Services
from sandbox import FakeSlack, FakeTelegram
from store.db import Database
from store.models import TaskEvent, User
from store.users import UserRole
from tests.bot.fixtures import make_services, make_settings
from tests.notifiers.helpers import RULES as BASE_RULES

CSRF = "t"
REDIS_DOWN = "redis://127.0.0.1:9/10"  # the discard port: nothing listens there

# The notifier tests' people (logistics supervised by marta, sales by sofia, alba an admin)
# and two agents with hours: one always at work, one never.
RULES = BASE_RULES.replace("""  - {id: alba, name: Alba Admin, slack: U0ALBA, admin: true}
""", """  - {id: alba, name: Alba Admin, slack: U0ALBA, admin: true}
  - {id: dora, name: Dora Day, teams: [sales], hours: {mon-sun: "00:00-24:00"}, capacity: 2}
  - {id: nico, name: Nico Never, teams: [sales], hours: {}, capacity: 2}
""")


@dataclass
class Console:
    client: TestClient
    services: Services
    sub: FastAPI

    @property
    def db(self) -> Database:
        return self.services.db

    def sign_in(self, role: str, *, agent: str | None = None,
                teams: tuple[str, ...] = ()) -> Viewer:
        """Signs in a person of `role`, bound to the rules.yaml `agent` when given."""
        user = User(id=1, email=f"{role}@example.com", role=role, agent_id=agent,
                    teams=list(teams))
        found, actor = act_as(user, self.services.rules.current)
        viewer = Viewer(1, user.email, UserRole(role), found, actor, session_id=1,
                        csrf_token=CSRF, stepped_up_at=None)
        self.sub.dependency_overrides[signed_in] = lambda: viewer
        return viewer

    def get(self, path: str) -> httpx.Response:
        return self.client.get("/console" + path)

    def post(self, path: str, data: dict | None = None, *, token: bool = True,
             follow: bool = True) -> httpx.Response:
        """A form POST, with the CSRF field unless `token` is False."""
        form = {**(data or {}), **({"csrf_token": CSRF} if token else {})}
        return self.client.post("/console" + path, data=form, follow_redirects=follow)

    def system_events(self, action: str) -> list[TaskEvent]:
        with self.db.transaction(readonly=True) as session:
            query = select(TaskEvent).where(TaskEvent.task_id.is_(None),
                                            TaskEvent.action == action).order_by(TaskEvent.id)
            found = list(session.scalars(query))
            session.expunge_all()
            return found


def console_of(app: FastAPI) -> FastAPI:
    """The console sub-app (where the `signed_in` dependency is overridden)."""
    return next(route.app for route in app.routes if getattr(route, "path", "") == "/console")


@contextmanager
def running_console(db: Database, redis_url: str, tmp_path, *,
                    rules: str = RULES) -> Iterator[Console]:
    """The app on `db` and `redis_url`, with Slack and Telegram (their fakes) on."""
    with FakeSlack() as slack, FakeTelegram() as telegram:
        settings = make_settings(tmp_path, database_url=db.url, redis_url=redis_url,
                                 slack=slack, telegram=telegram, rules=rules)
        services = make_services(settings, db)
        app = create_app(settings, services=services)
        sub = console_of(app)
        try:
            with TestClient(app, raise_server_exceptions=False) as client:
                yield Console(client, services, sub)
        finally:
            services.redis.close()

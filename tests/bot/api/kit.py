"""A running opsbot with its API, and keys to call it with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from bot.worker.entrypoints import install_services
from sandbox import FakeGraph, FakeSlack, FakeTelegram
from sandbox.inbound import Sender
from store.apikeys import SCOPES, create_api_key
from store.db import Database
from store.events import list_events
from store.models import TaskEvent
from store.types import utcnow
from tests.bot.fixtures import SLACK_SECRET, TELEGRAM_SECRET, make_services, make_settings
from tests.bot.whatsapp_kit import running_app
from tests.bot.world import World
from tests.notifiers.helpers import RULES as BASE_RULES

PROBLEM = "application/problem+json"


@dataclass
class Api:
    world: World
    url: str
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def db(self) -> Database:
        return self.world.services.db

    def key(self, name: str, scopes=SCOPES, agent: str | None = None) -> str:
        """A new key named `name`."""
        with self.db.transaction() as session:
            _, key = create_api_key(session, name=name, scopes=scopes, agent_id=agent,
                                    now=utcnow())
        self.keys[name] = key
        return key

    def call(self, method: str, path: str, key: str | None = None, **kwargs) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return httpx.request(method, self.url + "/api/v1" + path, headers=headers, timeout=20,
                             **kwargs)

    def system_events(self, action: str) -> list[TaskEvent]:
        with self.db.transaction(readonly=True) as session:
            query = select(TaskEvent).where(TaskEvent.task_id.is_(None),
                                            TaskEvent.action == action).order_by(TaskEvent.id)
            return list(session.scalars(query))

    def actions(self, number: int) -> list[tuple[str, str]]:
        with self.db.transaction(readonly=True) as session:
            return [(e.action, e.actor) for e in list_events(session, task_id=number)]


# The scenario rules plus one that reads the CRM status a PATCH sets.
RULES = BASE_RULES + """\
rules:
  - name: vip
    when: {customer_status: [vip]}
    then: {category: sales, tags: [vip], team: logistics}
"""


@contextmanager
def running_api(db: Database, redis_url: str, tmp_path) -> Iterator[Api]:
    """The fakes, services and the app over HTTP (as `running_world`), with RULES."""
    with FakeSlack() as slack, FakeTelegram() as telegram, FakeGraph() as graph:
        settings = make_settings(tmp_path, database_url=db.url, redis_url=redis_url,
                                 slack=slack, telegram=telegram, graph=graph, rules=RULES)
        services = make_services(settings, db)
        install_services(services)
        try:
            with running_app(services) as url:
                send = Sender(url, whatsapp_secret="wa-secret", slack_secret=SLACK_SECRET,
                              telegram_secret=TELEGRAM_SECRET)
                yield Api(World(services, slack, telegram, graph, send), url)
        finally:
            install_services(None)
            services.redis.close()


def assert_problem(response: httpx.Response, status: int) -> dict:
    """The problem document of `response`, checked for its shape and content type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail", "instance"}
    assert body["status"] == status and body["detail"]
    assert "Traceback" not in response.text
    return body

"""A running opsbot wired to the fake Slack, Telegram and Graph APIs, for scenario tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rq import SimpleWorker
from sqlalchemy import select

from bot.core.services import Services
from bot.usecases.assignment import assign_task
from bot.worker.drains import drain
from bot.worker.entrypoints import install_services
from sandbox import FakeGraph, FakeSlack, FakeTelegram
from sandbox.inbound import Sender
from store.events import list_events
from store.models import Contact, OutboxMessage, Task
from store.tasks import get_task
from store.types import utcnow
from tests.bot.fixtures import (
    SLACK_SECRET,
    TELEGRAM_SECRET,
    make_services,
    make_settings,
)
from tests.bot.whatsapp_kit import running_app
from tests.notifiers.helpers import make_task


@dataclass
class World:
    services: Services
    slack: FakeSlack
    telegram: FakeTelegram
    graph: FakeGraph
    send: Sender

    @property
    def config(self):
        return self.services.rules.current

    def work(self) -> None:
        """Drains what the database holds and runs every queued job (burst)."""
        drain(self.services)
        SimpleWorker([self.services.jobs.queue], connection=self.services.redis).work(burst=True)

    def assigned_task(self, agent_id: str | None = None) -> int:
        """A logistics task from a customer who wrote just now, routed (or given to agent)."""
        with self.services.db.transaction() as session:
            task = make_task(session)
            task.contact.last_inbound_at = utcnow()
            exclude = [a.id for a in self.config.agents if agent_id and a.id != agent_id]
            result = assign_task(session, config=self.config, task=task, now=utcnow(),
                                 exclude=exclude)
            assert result.agent_id is not None, result.summary
            number = task.id
        self.work()
        return number

    def task(self, number: int) -> Task:
        with self.services.db.transaction() as session:
            return get_task(session, ref=number)

    def actions(self, number: int) -> list[tuple[str, str]]:
        with self.services.db.transaction() as session:
            return [(e.action, e.actor) for e in list_events(session, task_id=number)]

    def outbox(self, kind: str) -> list[OutboxMessage]:
        with self.services.db.transaction() as session:
            query = select(OutboxMessage).where(OutboxMessage.kind == kind)
            return list(session.scalars(query.order_by(OutboxMessage.id)))

    def customer_texts(self) -> list[str]:
        return [m["text"]["body"] for m in self.graph.sent_messages() if m.get("type") == "text"]

    def contact_count(self) -> int:
        with self.services.db.transaction() as session:
            return session.query(Contact).count()


@contextmanager
def running_world(db, redis_url: str, tmp_path) -> Iterator[World]:
    """Fakes, services and the app over HTTP; jobs run in this process."""
    with FakeSlack() as slack, FakeTelegram() as telegram, FakeGraph() as graph:
        settings = make_settings(tmp_path, database_url=db.url, redis_url=redis_url,
                                 slack=slack, telegram=telegram, graph=graph)
        services = make_services(settings, db)
        install_services(services)
        try:
            with running_app(services) as url:
                send = Sender(url, slack_secret=SLACK_SECRET, telegram_secret=TELEGRAM_SECRET)
                yield World(services, slack, telegram, graph, send)
        finally:
            install_services(None)
            services.redis.close()

"""Webhook → drain request → RQ worker → task + acknowledgement at the fake Graph API."""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from redis import Redis
from rq import SimpleWorker
from sqlalchemy import func, select

from bot.core.bootstrap import build_services
from bot.core.jobs import Jobs
from bot.worker.drains import request_drain
from bot.worker.entrypoints import install_services
from bot.worker.sweeper import sweep
from sandbox.stack import free_port
from store.models import EventStatus, InboundEvent, Message, OutboxMessage, Task
from tests.bot.whatsapp_kit import TEXT, make_settings, message_body, post, running_app
from tests.fakes import FakeGraph


@pytest.fixture
def graph():
    with FakeGraph(token="TEST-TOKEN") as fake:
        yield fake


@pytest.fixture
def services(tmp_path, database_url, redis_url, graph):
    settings = make_settings(tmp_path, database_url, redis_url, whatsapp_api_base_url=graph.url)
    built = build_services(settings, migrate=False)
    install_services(built)
    yield built
    install_services(None)
    built.close()


def work(services) -> None:
    queue = services.jobs.queue
    SimpleWorker([queue], connection=services.redis).work(burst=True, with_scheduler=False)


def count(services, model, *where) -> int:
    with services.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_five_concurrent_deliveries_make_one_task_and_one_message_to_the_customer(services, graph):
    body = message_body(TEXT, wamid="wamid.E2E")
    with running_app(services) as url, ThreadPoolExecutor(5) as pool:
        statuses = [r.status_code for r in pool.map(lambda _: post(url, body), range(5))]
    assert statuses == [200] * 5
    request_drain(services)  # the app asked after commit; this makes sure
    work(services)  # the drain processes the message, then sends the ack
    assert count(services, Task) == 1
    assert count(services, OutboxMessage, OutboxMessage.kind == "ack") == 1
    [sent] = graph.sent_messages()
    assert sent["to"] == "34600111222"
    with services.db.transaction() as session:
        reply = session.scalars(select(Message).where(Message.direction == "outbound")).one()
    assert reply.via == "text"
    assert reply.provider_message_id is not None


def _dead_redis_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


def test_messages_arriving_while_redis_is_down_are_all_processed_once_it_is_back(services):
    down = Redis.from_url(_dead_redis_url(), socket_connect_timeout=0.2)
    offline = replace(services, redis=down, jobs=Jobs(down))
    with running_app(offline) as url:
        for n in range(4):
            body = message_body(
                {"type": "text", "text": {"body": f"mensaje {n}"}},
                wamid=f"wamid.DOWN{n}",
                wa_id=f"3460000000{n}",
            )
            assert post(url, body).status_code == 200
    assert count(services, InboundEvent, InboundEvent.dispatched_at.is_(None)) == 4
    sweep(services)  # Redis is back: the sweeper asks for a drain of what is left
    work(services)
    assert count(services, InboundEvent, InboundEvent.status == EventStatus.PROCESSED) == 4
    assert count(services, Task) == 4
    sweep(services)
    work(services)
    assert count(services, Task) == 4

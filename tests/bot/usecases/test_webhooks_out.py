"""Delivering outgoing webhooks to a local receiver: signed by Standard Webhooks, in order per
task, retried by the schedule, 410 disables, every attempt recorded; and the worker wiring."""

from collections import defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.core import tunables
from bot.usecases.webhooks_out import Sender, deliver_due, retry_wait, retry_waits
from bot.worker.drains import deliver_webhooks_for_job, request_webhook_delivery
from bot.worker.sweeper import sweep
from sandbox.crm import FakeReceiver
from store.contacts import upsert_contact
from store.events import Audit, record_event
from store.lifecycle import SYSTEM, Action
from store.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from store.tasks import create_task, transition_task
from store.types import utcnow
from store.webhooks import EVENT_TYPES, DeliveryStatus, add_endpoint, list_attempts
from tests.bot.workers_support import make_services, write_rules


@pytest.fixture
def receiver():
    with FakeReceiver() as fake:
        yield fake


@pytest.fixture
def sender():
    opened = Sender.open(rand=lambda: 0.5)  # no jitter: the schedule's nominal waits
    yield opened
    opened.close()


def _endpoint(db, url, events=EVENT_TYPES):
    with db.transaction() as session:
        endpoint, secret = add_endpoint(session, url=url, events=events, now=utcnow())
    return endpoint.id, secret


def _tasks(db, count, *, at, replies=2):
    """`count` tasks of one customer, each created, assigned and replied to `replies` times
    (2 + replies webhooks each)."""
    with db.transaction() as session:
        contact, _ = upsert_contact(session, wa_id="34600111222", user_id=None, name="Lucía",
                                    now=at)
        for number in range(count):
            task = create_task(session, title=f"Pedido {number}", category="orders",
                               priority="normal", actor=SYSTEM, contact_id=contact.id, now=at)
            transition_task(session, task=task, action=Action.ASSIGN, actor=SYSTEM,
                            assignee_id="ana", now=at)
            for reply in range(replies):
                record_event(session, task=task, actor="agent:ana", action=Audit.REPLY,
                             details={"text": f"respuesta {reply}"}, at=at)


def _deliveries(db):
    with db.transaction() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def test_the_schedule_backs_off_for_about_three_days_with_jitter():
    waits = retry_waits()
    assert waits[:9] == (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800)
    assert set(waits[9:]) == {28800}
    assert timedelta(days=2.9) < timedelta(seconds=sum(waits)) <= timedelta(days=3)
    assert retry_wait(1, lambda: 0.5) == timedelta(seconds=5)
    assert retry_wait(1, lambda: 0.0) == timedelta(seconds=4)
    assert retry_wait(2, lambda: 0.999) < timedelta(seconds=36)
    assert retry_wait(len(waits), lambda: 0.5) == timedelta(seconds=28800)
    assert retry_wait(len(waits) + 1, lambda: 0.5) is None


def test_deliveries_are_signed_and_verify_with_the_reference_library(db, receiver, sender):
    _endpoint_id, secret = _endpoint(db, receiver.url + "/crm")
    now = utcnow()
    _tasks(db, 2, at=now, replies=1)
    assert deliver_due(db, owner="job-1", seconds=None, now=now, sender=sender) == 6
    payloads = receiver.verified(secret)
    assert len(payloads) == 6
    first = receiver.accepted()[0]
    assert first.headers["webhook-id"].startswith("msg_")
    assert first.headers["webhook-signature"].startswith("v1,")
    assert {p["type"] for p in payloads} == {"task.created", "task.assigned", "message.sent"}
    reply = next(p for p in payloads if p["type"] == "message.sent")
    assert reply["data"]["message"]["text"] == "respuesta 0"
    assert reply["data"]["task"]["contact"]["name"] == "Lucía"
    assert {d.status for d in _deliveries(db)} == {DeliveryStatus.DELIVERED}
    with db.transaction() as session:
        attempts = list(session.scalars(select(WebhookAttempt)))
    assert len(attempts) == 6
    assert all(a.status_code == 200 and a.latency_ms is not None and a.response_head
               for a in attempts)


def test_a_receiver_down_ten_minutes_gets_every_event_once_in_order(db, receiver, sender):
    _endpoint_id, secret = _endpoint(db, receiver.url)
    start = utcnow() - timedelta(minutes=15)
    _tasks(db, 5, at=start, replies=3)
    receiver.answer(503)
    for second in range(0, 3600, 15):
        now = start + timedelta(seconds=second)
        if second >= 600:
            receiver.answer(200)
        deliver_due(db, owner="job-1", seconds=None, now=now, sender=sender)
    payloads = receiver.verified(secret)
    assert len(payloads) == 5 * 5
    assert len({r.headers["webhook-id"] for r in receiver.accepted()}) == 25  # each once
    per_task = defaultdict(list)
    for payload in payloads:
        per_task[payload["data"]["task"]["ref"]].append(
            (payload["type"], payload["data"].get("message", {}).get("text")))
    assert len(per_task) == 5
    assert all(events == [("task.created", None), ("task.assigned", None),
                          ("message.sent", "respuesta 0"), ("message.sent", "respuesta 1"),
                          ("message.sent", "respuesta 2")] for events in per_task.values())
    failed = [r for r in receiver.requests if r.status == 503]
    assert 5 * 4 <= len(failed) <= 5 * 5  # the heads only, at 0 s, 5 s, 35 s, 155 s (755 s: up)
    deliveries = _deliveries(db)
    assert {d.status for d in deliveries} == {DeliveryStatus.DELIVERED}
    with db.transaction() as session:
        attempts = list_attempts(session, delivery_ids=[d.id for d in deliveries])
    head = attempts[deliveries[0].id]
    assert [a.status_code for a in head] == [503, 503, 503, 503, 200]
    assert head[0].response_head == '{"ok": false}'


def test_410_disables_the_endpoint_and_stops_its_deliveries(db, receiver, sender):
    endpoint_id, _ = _endpoint(db, receiver.url)
    now = utcnow()
    _tasks(db, 3, at=now)
    receiver.answer(410)
    deliver_due(db, owner="job-1", seconds=None, now=now, sender=sender)
    tried = len(receiver.requests)  # the heads of the three tasks go out side by side
    assert 1 <= tried <= 3
    with db.transaction() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint.disabled_at is not None and "410" in endpoint.disabled_reason
    statuses = [d.status for d in _deliveries(db)]
    assert statuses.count(DeliveryStatus.FAILED) == tried
    assert statuses.count(DeliveryStatus.CANCELLED) == len(statuses) - tried
    deliver_due(db, owner="job-1", seconds=None, now=now, sender=sender)
    assert len(receiver.requests) == tried


def test_a_timeout_is_recorded_and_retried_later(db, receiver, sender, monkeypatch):
    monkeypatch.setattr(tunables, "WEBHOOK_TIMEOUT", 0.2)
    slow_sender = Sender.open(rand=lambda: 0.5)
    _endpoint(db, receiver.url)
    now = utcnow()
    _tasks(db, 1, at=now, replies=0)
    receiver.answer(200, hang=0.6)
    try:
        deliver_due(db, owner="job-1", seconds=None, now=now, sender=slow_sender)
    finally:
        slow_sender.close()
    first, second = _deliveries(db)
    assert first.status == DeliveryStatus.PENDING and first.attempts == 1
    assert first.next_attempt_at == now + timedelta(seconds=5)
    assert second.attempts == 0 and second.dispatched_at is None  # waits behind the first
    with db.transaction() as session:
        [attempt] = list_attempts(session, delivery_ids=[first.id])[first.id]
    assert attempt.status_code is None and "Timeout" in attempt.error


def test_after_the_schedule_a_delivery_fails_and_the_next_goes(db, receiver, sender):
    _endpoint(db, receiver.url)
    now = utcnow()
    _tasks(db, 1, at=now, replies=0)
    with db.transaction() as session:
        session.execute(WebhookDelivery.__table__.update()
                        .where(WebhookDelivery.id == 1).values(attempts=len(retry_waits())))
    receiver.answer(500)
    deliver_due(db, owner="job-1", seconds=None, now=now, sender=sender)
    assert [d.status for d in _deliveries(db)] == [DeliveryStatus.FAILED, DeliveryStatus.PENDING]


def test_the_worker_asks_for_a_job_and_the_sweeper_redrives(database_url, redis_url, tmp_path,
                                                            receiver):
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    _endpoint(services.db, receiver.url)
    now = utcnow()
    request_webhook_delivery(services, now=now)
    assert services.jobs.queue.get_job_ids() == []  # nothing due: no job
    _tasks(services.db, 1, at=now, replies=0)
    request_webhook_delivery(services, now=now)
    request_webhook_delivery(services, now=now)  # one job waits already
    assert [i.split("-")[0] for i in services.jobs.queue.get_job_ids()] == ["webhooks"]
    assert deliver_webhooks_for_job(services) == 2
    assert len(receiver.accepted()) == 2
    with services.db.transaction() as session:  # a job that died holding a delivery
        add_endpoint(session, url=receiver.url, events=["task.created"], now=now)
    _tasks(services.db, 1, at=now, replies=0)
    with services.db.transaction() as session:
        session.execute(WebhookDelivery.__table__.update()
                        .where(WebhookDelivery.status == DeliveryStatus.PENDING)
                        .values(claimed_by="gone-job", dispatched_at=now - timedelta(hours=1)))
    services.redis.flushdb()
    sweep(services, now=now)
    assert "webhooks" in [i.split("-")[0] for i in services.jobs.queue.get_job_ids()]
    assert deliver_webhooks_for_job(services) == 3
    services.close()

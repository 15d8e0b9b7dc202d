"""Outgoing webhooks in store/: endpoints, which audit events queue which webhooks, sealed
payloads, per-task ordering of claims, disabling and replay."""

import base64
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Text, select, type_coerce

from store.contacts import upsert_contact
from store.errors import DomainError, NotFound
from store.events import Audit, record_event
from store.gdpr import erase_contact
from store.lifecycle import SYSTEM, Action, Actor, ActorKind
from store.models import WebhookDelivery, WebhookEndpoint
from store.tasks import create_task, transition_task
from store.webhooks import (
    EVENT_TYPES,
    DeliveryStatus,
    InvalidEndpoint,
    add_endpoint,
    claim_deliveries,
    disable_endpoint,
    list_deliveries,
    list_endpoints,
    replay_delivery,
    webhook_types,
)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
AGENT = Actor(ActorKind.AGENT, "ana", admin=True)


def _task(session, *, title="Pedido 1042 roto", message_id=None):
    contact, _ = upsert_contact(session, wa_id="34600111222", user_id=None, name="Lucía Pérez",
                                now=NOW)
    details = {"message_id": message_id} if message_id else None
    return create_task(session, title=title, category="orders", priority="high", actor=SYSTEM,
                       contact_id=contact.id, details=details, now=NOW, team="ops")


def _types(session, endpoint_id=None):
    query = select(WebhookDelivery).order_by(WebhookDelivery.id)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    return [d.type for d in session.scalars(query)]


@pytest.mark.parametrize(("action", "source", "target", "details", "expected"), [
    ("created", None, "new", {"message_id": 7}, ["task.created", "message.received"]),
    ("created", None, "new", {}, ["task.created"]),
    ("assign", "new", "assigned", {}, ["task.assigned"]),
    ("reassign", "accepted", "assigned", {}, ["task.assigned"]),
    ("accept", "assigned", "accepted", {}, ["task.status_changed"]),
    ("close", "resolved", "closed", {}, ["task.status_changed", "task.closed"]),
    ("escalated", None, None, {"step": "notify_supervisor"}, ["task.sla_breached"]),
    ("message", None, None, {"text": "hola"}, ["message.received"]),
    ("reply", None, None, {"text": "on it"}, ["message.sent"]),
    ("rated", None, None, {"rating": 5}, ["csat.received"]),
    ("contact_updated", None, None, {"contact_id": 1, "fields": ["crm_status"]},
     ["contact.updated"]),
    ("note", None, None, {"text": "internal"}, []),
    ("reminder", None, None, {"percent": 50}, []),
    ("resume", "in_progress", "in_progress", {}, []),
])
def test_audit_actions_map_to_webhook_types(action, source, target, details, expected):
    assert webhook_types(action=action, from_status=source, to_status=target,
                         details=details) == expected


def test_an_endpoint_is_checked_and_gets_its_own_sealed_secret(db):
    with db.transaction() as session:
        for url, events in [("ftp://crm.example/hook", ["task.created"]),
                            ("crm.example/hook", ["task.created"]),
                            ("https://crm.example/hook", ["task.exploded"]),
                            ("https://crm.example/hook", [])]:
            with pytest.raises(InvalidEndpoint):
                add_endpoint(session, url=url, events=events, now=NOW)
        one, secret = add_endpoint(session, url="https://crm.example/hook",
                                   events=["task.closed", "task.created"], now=NOW)
        _, other = add_endpoint(session, url="http://127.0.0.1:9/x", events=EVENT_TYPES, now=NOW)
    assert secret.startswith("whsec_") and secret != other
    assert 24 <= len(base64.b64decode(secret.removeprefix("whsec_"))) <= 32
    with db.transaction() as session:
        assert [e.events for e in list_endpoints(session)] == [
            ["task.created", "task.closed"], list(EVENT_TYPES)]
        raw = session.scalar(select(type_coerce(WebhookEndpoint.secret, Text))
                             .where(WebhookEndpoint.id == one.id))
    assert raw.startswith("enc1:") and secret not in raw


def test_events_queue_deliveries_for_subscribed_endpoints_only(db):
    with db.transaction() as session:
        everything, _ = add_endpoint(session, url="https://a.example/h", events=EVENT_TYPES,
                                     now=NOW)
        closing, _ = add_endpoint(session, url="https://b.example/h", events=["task.closed"],
                                  now=NOW)
        task = _task(session)
        transition_task(session, task=task, action=Action.ASSIGN, actor=SYSTEM,
                        assignee_id="ana", now=NOW)
        transition_task(session, task=task, action=Action.ACCEPT, actor=AGENT, now=NOW)
        record_event(session, task=task, actor=AGENT.label, action=Audit.REPLY,
                     details={"text": "Lo miramos"}, at=NOW)
        for step in ("notify_supervisor", "raise_priority"):  # one breach, two steps
            record_event(session, task=task, actor=SYSTEM.label, action=Audit.ESCALATED, at=NOW,
                         details={"step": step, "deadline": "resolution", "due": "x"})
        transition_task(session, task=task, action=Action.CLOSE, actor=AGENT, now=NOW)
        record_event(session, task=task, actor="customer:contact-1", action=Audit.RATED,
                     details={"rating": 4, "message_id": None}, at=NOW)
        record_event(session, task=None, actor=SYSTEM.label, action="contact_updated",
                     details={"contact_id": task.contact_id, "fields": ["crm_status"]}, at=NOW)
        assert _types(session, everything.id) == [
            "task.created", "task.assigned", "task.status_changed", "message.sent",
            "task.sla_breached", "task.status_changed", "task.closed", "csat.received",
            "contact.updated"]
        assert _types(session, closing.id) == ["task.closed"]


def test_the_payload_is_a_versioned_snapshot_sealed_at_rest(db):
    with db.transaction() as session:
        add_endpoint(session, url="https://a.example/h", events=EVENT_TYPES, now=NOW)
        task = _task(session)
        record_event(session, task=task, actor="customer:contact-1", action=Audit.MESSAGE,
                     details={"message_id": 3, "type": "text", "text": "¿Dónde está?"}, at=NOW)
    with db.transaction() as session:
        created, message = list_deliveries(session, endpoint_id=1)[::-1]
        raw = session.scalars(select(type_coerce(WebhookDelivery.payload, Text))).all()
    assert created.payload["type"] == "task.created"
    data = message.payload["data"]
    assert message.payload["timestamp"] == NOW.isoformat()
    assert data["version"] == 1 and data["actor"] == "customer:contact-1"
    assert data["message"] == {"id": 3, "type": "text", "text": "¿Dónde está?"}
    assert data["task"]["ref"] == f"T-{task.id}" and data["task"]["title"] == "Pedido 1042 roto"
    assert data["task"]["contact"]["wa_id"] == "34600111222"
    assert data["task"]["contact"]["name"] == "Lucía Pérez"
    assert isinstance(data["event_id"], int)
    for text in raw:
        assert text.startswith("enc1:")
        assert "Lucía" not in text and "34600111222" not in text and "Pedido" not in text


def test_nothing_is_queued_without_an_enabled_endpoint(db):
    with db.transaction() as session:
        _task(session)
        endpoint, _ = add_endpoint(session, url="https://a.example/h", events=EVENT_TYPES,
                                   now=NOW)
        disable_endpoint(session, endpoint_id=endpoint.id, reason="test", now=NOW)
        _task(session, title="second")
        assert _types(session) == []


def test_claims_keep_each_task_in_order(db):
    with db.transaction() as session:
        endpoint, _ = add_endpoint(session, url="https://a.example/h", events=EVENT_TYPES,
                                   now=NOW)
        first, second = _task(session), _task(session, title="other")
        transition_task(session, task=first, action=Action.ASSIGN, actor=SYSTEM,
                        assignee_id="ana", now=NOW)
    with db.transaction() as session:
        heads = claim_deliveries(session, owner="job-1", limit=10, follow=0, now=NOW)
        assert [(d.task_id, d.payload["type"]) for d in heads] == [
            (first.id, "task.created"), (second.id, "task.created")]
        assert heads[0].url == "https://a.example/h" and heads[0].secret.startswith("whsec_")
    with db.transaction() as session:  # heads held by job-1: what follows them waits
        assert claim_deliveries(session, owner="job-2", limit=10, follow=10, now=NOW) == []
    with db.transaction() as session:
        session.execute(WebhookDelivery.__table__.update().values(dispatched_at=None,
                                                                  claimed_by=None))
        chain = claim_deliveries(session, owner="job-3", limit=1, follow=10, now=NOW)
    assert [d.payload["type"] for d in chain] == ["task.created", "task.assigned"]
    assert {d.endpoint_id for d in chain} == {endpoint.id}


def test_disabling_cancels_pending_and_replay_sends_a_copy(db):
    with db.transaction() as session:
        endpoint, _ = add_endpoint(session, url="https://a.example/h", events=["task.created"],
                                   now=NOW)
        _task(session)
        (original,) = list_deliveries(session, endpoint_id=endpoint.id)
        copy = replay_delivery(session, delivery_id=original.id, now=NOW + timedelta(hours=1))
        assert copy.id != original.id and copy.message_id != original.message_id
        assert copy.payload == original.payload and copy.status == DeliveryStatus.PENDING
        assert copy.task_id == original.task_id
        disable_endpoint(session, endpoint_id=endpoint.id, reason="CRM retired", now=NOW)
        statuses = {d.status for d in list_deliveries(session, endpoint_id=endpoint.id)}
        assert statuses == {DeliveryStatus.CANCELLED}
        assert endpoint.disabled_reason == "CRM retired"
        with pytest.raises(InvalidEndpoint):
            replay_delivery(session, delivery_id=original.id, now=NOW)
        with pytest.raises(NotFound):
            replay_delivery(session, delivery_id=999, now=NOW)
        with pytest.raises(NotFound):
            disable_endpoint(session, endpoint_id=999, reason="x", now=NOW)


def test_deliveries_of_an_erased_customer_are_cancelled_not_sent(db):
    with db.transaction() as session:
        add_endpoint(session, url="https://a.example/h", events=["task.created"], now=NOW)
        _task(session)
    with db.transaction() as session:
        erase_contact(session, wa_id="34600111222", actor="admin", reason="GDPR request",
                      now=NOW)
    with db.transaction() as session:
        assert claim_deliveries(session, owner="job-1", limit=10, follow=10, now=NOW) == []
        (delivery,) = list_deliveries(session, endpoint_id=1)
        assert delivery.status == DeliveryStatus.CANCELLED
        with pytest.raises(DomainError):
            replay_delivery(session, delivery_id=delivery.id, now=NOW)

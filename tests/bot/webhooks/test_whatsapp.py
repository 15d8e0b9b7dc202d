"""The WhatsApp webhook over real HTTP: verification, signatures, limits, durable intake."""

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from bot.worker.retries import process_event
from store.inbound import list_failed_events
from store.keys import blind_index
from store.models import EventStatus, InboundEvent, OutboxMessage, Task
from tests.bot.whatsapp_kit import (
    TEXT,
    VERIFY_TOKEN,
    live,
    make_settings,
    message_body,
    post,
    status_body,
)


@pytest.fixture
def app(tmp_path, database_url, redis_url):
    with live(make_settings(tmp_path, database_url, redis_url)) as running:
        yield running


def _events(services) -> list[InboundEvent]:
    with services.db.transaction() as session:
        return list(session.scalars(select(InboundEvent).order_by(InboundEvent.id)))


def _count(services, model) -> int:
    with services.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize(
    ("token", "status", "text"),
    [(VERIFY_TOKEN, 200, "1158201444"), ("wrong", 403, "verification failed")],
)
def test_verification_challenge(app, token, status, text):
    _, url = app
    params = {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1158201444"}
    response = httpx.get(url + "/webhooks/whatsapp", params=params)
    assert response.status_code == status
    assert text in response.text


@pytest.mark.parametrize("signature", ["", "sha256=" + "0" * 64, "deadbeef"])
def test_a_missing_or_wrong_signature_is_refused_and_nothing_is_stored(app, signature):
    services, url = app
    response = post(url, message_body(TEXT, wamid="wamid.BAD"), signature=signature)
    assert response.status_code == 403
    assert _events(services) == []


def test_a_body_signed_with_another_secret_is_refused(app):
    services, url = app
    assert post(url, message_body(TEXT, wamid="wamid.X"), secret="other").status_code == 403
    assert _events(services) == []


def test_a_body_over_3_mb_is_refused_with_413(app):
    services, url = app
    body = json.dumps({"object": "x", "pad": "a" * (3 * 1024 * 1024)}).encode()
    assert post(url, body).status_code == 413
    assert _events(services) == []


def test_a_message_is_committed_before_the_200(app):
    services, url = app
    response = post(url, message_body(TEXT, wamid="wamid.ONE"))
    assert response.status_code == 200
    [event] = _events(services)
    assert (event.provider_event_id, event.kind, event.status) == (
        "wamid.ONE",
        "message",
        EventStatus.PENDING,
    )
    assert event.contact_key == blind_index("34600111222")  # the number is never stored
    assert (
        json.loads(event.raw_body)["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        == "wamid.ONE"
    )


def test_a_body_is_split_into_messages_and_statuses(app):
    services, url = app
    body = message_body(TEXT, wamid="wamid.A")
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"].append({**value["messages"][0], "id": "wamid.B"})
    value["statuses"] = status_body("wamid.OUT", "delivered")["entry"][0]["changes"][0]["value"][
        "statuses"
    ]
    assert post(url, body).status_code == 200
    ids = sorted(e.provider_event_id for e in _events(services))
    assert ids == ["wamid.A", "wamid.B", "wamid.OUT:delivered"]


def test_malformed_json_with_a_valid_signature_is_kept_as_failed(app):
    services, url = app
    response = post(url, b'{"object": "whatsapp_business_account", "entry": [')
    assert response.status_code == 200
    [event] = _events(services)
    assert event.status == EventStatus.FAILED
    assert "not JSON" in event.error
    with services.db.transaction() as session:
        assert [e.id for e in list_failed_events(session)] == [event.id]


def test_the_same_message_five_times_concurrently_gives_one_task_and_one_ack(app):
    services, url = app
    body = message_body(TEXT, wamid="wamid.DUP")
    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(lambda _: post(url, body), range(5)))
    assert [r.status_code for r in responses] == [200] * 5
    events = _events(services)
    assert len(events) == 1
    for _ in range(2):  # a second run of the same event changes nothing
        process_event(services, events[0].id)
    assert _count(services, Task) == 1
    with services.db.transaction() as session:
        acks = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "ack")).all()
    assert len(acks) == 1


def test_a_redelivered_message_is_stored_once(app):
    services, url = app
    for _ in range(3):
        assert post(url, message_body(TEXT, wamid="wamid.AGAIN")).status_code == 200
    assert len(_events(services)) == 1

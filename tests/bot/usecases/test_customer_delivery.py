"""Customer messages through pywa against the fake Graph API: the 24 h window and errors."""

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.core import tunables
from bot.usecases import delivery
from bot.usecases.delivery import Delivered, DeliveryOutcome, send_claimed, send_customer_message
from bot.worker.retries import deliver, outlets_of, process_event
from notifiers.errors import PermanentDeliveryError, TransientDeliveryError
from notifiers.notifications import NotificationKind
from store.events import Audit, list_events
from store.models import Contact, InboundEvent, Message, OutboxMessage, OutboxStatus
from store.outbox import CUSTOMER_CHANNEL, queue_customer_message
from store.types import utcnow
from tests.bot.whatsapp_kit import CUSTOMER, TEXT, live, make_settings, message_body, post
from tests.fakes import FakeGraph


@pytest.fixture
def graph():
    with FakeGraph(token="TEST-TOKEN") as fake:
        yield fake


@pytest.fixture
def app(tmp_path, database_url, redis_url, graph):
    settings = make_settings(tmp_path, database_url, redis_url, whatsapp_api_base_url=graph.url)
    with live(settings) as running:
        yield running


def queued_ack(app) -> OutboxMessage:
    services, url = app
    assert post(url, message_body(TEXT, wamid="wamid.IN")).status_code == 200
    with services.db.transaction() as session:
        event_id = session.scalars(select(InboundEvent.id)).one()
    process_event(services, event_id)
    with services.db.transaction() as session:
        return session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "ack")).one()


def reply_row(services) -> Message:
    with services.db.transaction() as session:
        return session.scalars(select(Message).where(Message.direction == "outbound")).one()


def test_inside_the_window_free_text_is_sent_once(app, graph):
    services, _ = app
    ack = queued_ack(app)
    wamid = send_customer_message(services.db, outlets_of(services), ack)
    again = send_customer_message(services.db, outlets_of(services), ack)
    assert again == wamid  # already sent: not sent again
    [sent] = graph.sent_messages()
    assert (sent["type"], sent["to"]) == ("text", CUSTOMER)
    assert sent["text"]["body"] == ack.payload["text"]
    row = reply_row(services)
    assert (row.via, row.provider_message_id, row.status, row.error) == (
        "text",
        wamid,
        "sent",
        None,
    )


def test_a_send_whatsapp_accepted_is_recorded_through_a_database_hiccup(app, graph,
                                                                         monkeypatch):
    # WhatsApp has the message once the Graph API answers: if recording its wamid failed for
    # good, the row's next run would find no wamid and send it to the customer again.
    services, _ = app
    ack = queued_ack(app)
    monkeypatch.setattr(tunables, "BACKOFF", (0.01, 0.01, 0.01))
    record, calls = delivery._record_customer_send, []

    def hiccup(*args, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("UPDATE messages", {}, Exception("database is locked"))
        return record(*args, **kwargs)

    monkeypatch.setattr(delivery, "_record_customer_send", hiccup)
    wamid = send_customer_message(services.db, outlets_of(services), ack)
    assert len(calls) == 2
    assert reply_row(services).provider_message_id == wamid
    assert send_customer_message(services.db, outlets_of(services), ack) == wamid
    assert len(graph.sent_messages()) == 1


def test_outside_the_window_the_configured_template_is_sent(app, graph):
    services, _ = app
    ack = queued_ack(app)
    with services.db.transaction() as session:
        contact = session.scalars(select(Contact)).one()
        contact.last_inbound_at = utcnow() - timedelta(hours=25)
    send_customer_message(services.db, outlets_of(services), ack)
    [sent] = graph.sent_messages()
    assert sent["type"] == "template"
    assert sent["template"]["name"] == "opsbot_task_update"
    assert sent["template"]["language"]["code"] == "es"
    assert reply_row(services).via == "template"


@pytest.mark.parametrize(
    ("status", "error"), [(500, TransientDeliveryError), (400, PermanentDeliveryError)]
)
def test_a_graph_error_is_recorded_and_raised_for_delivery(app, graph, status, error):
    services, _ = app
    ack = queued_ack(app)
    graph.fail_next(status=status, match="messages")
    with pytest.raises(error):
        send_customer_message(services.db, outlets_of(services), ack)
    row = reply_row(services)
    assert row.provider_message_id is None
    assert "Graph API error" in row.error or "Error" in row.error


def test_a_customer_without_a_phone_number_is_addressed_by_bsuid(app, graph):
    services, url = app
    body = message_body(TEXT, wamid="wamid.B1")
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": "Lucía Pérez"}, "user_id": "ES.7777777777"}]
    del value["messages"][0]["from"]
    value["messages"][0]["from_user_id"] = "ES.7777777777"
    assert post(url, body).status_code == 200
    with services.db.transaction() as session:
        event_id = session.scalars(select(InboundEvent.id)).one()
    process_event(services, event_id)
    with services.db.transaction() as session:
        ack = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "ack")).one()
    send_customer_message(services.db, outlets_of(services), ack)
    [sent] = graph.sent_messages()
    assert sent["recipient"] == "ES.7777777777"
    assert "to" not in sent or sent["to"] is None


def test_a_message_whatsapp_refuses_for_good_ends_failed_and_tells_the_assignee(app, graph):
    """Issue 14: the agent-card fallback read the customer's number as a list of channels
    (`channel = '3'`), the row stayed pending and claimed for ever."""
    services, _ = app
    ack = queued_ack(app)
    graph.fail_next(status=400, match="messages")
    delivered = deliver(services, ack.id)
    assert delivered == Delivered(DeliveryOutcome.FAILED)
    with services.db.transaction() as session:
        row = session.get(OutboxMessage, ack.id)
        assert (row.channel, row.status) == ("whatsapp", OutboxStatus.FAILED)
        assert "Graph API error" in row.last_error
        [failed] = list_events(session, task_id=row.task_id, action=Audit.DELIVERY_FAILED)
        assert failed.details["fallback"] is None
        [card] = session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == NotificationKind.CUSTOMER_REFUSED)).all()
    assert card.agent_id == "ana"
    title = card.payload["notification"]["title"]
    assert title.startswith(f"WhatsApp refused the message to the customer of T-{row.task_id}")


def test_a_customers_messages_go_in_order_and_other_customers_at_the_same_time(app, graph):
    services, url = app
    for wamid, wa_id in (("wamid.A", CUSTOMER), ("wamid.B", "34600999888")):
        assert post(url, message_body(TEXT, wamid=wamid, wa_id=wa_id)).status_code == 200
    with services.db.transaction() as session:
        events = session.scalars(select(InboundEvent.id).order_by(InboundEvent.id)).all()
    for event_id in events:
        process_event(services, event_id)  # an acknowledgement queued for each customer
    with services.db.transaction() as session:
        ack = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "ack")
                              .order_by(OutboxMessage.id)).first()
        first = session.get(Contact, ack.contact_id)  # the customer who wrote first
        assert first.wa_id == CUSTOMER
        queue_customer_message(session, contact=first, kind="reply", text="Ya está en camino",
                               dedupe_key="reply-1")
        to_customers = select(OutboxMessage).where(OutboxMessage.channel == CUSTOMER_CHANNEL)
        rows = list(session.scalars(to_customers.order_by(OutboxMessage.id)))
    graph.delay = 0.5  # the Graph API far away: every call is answered half a second later
    sent = send_claimed(services.db, outlets_of(services), rows, {})
    assert len(sent.sent) == 3 and not sent.failed
    arrived = {(r.json["to"], r.json["text"]["body"]): r.at.timestamp()
               for r in graph.calls("messages") if r.json and "text" in r.json}
    ack, reply = sorted(at for (to, _), at in arrived.items() if to == CUSTOMER)
    [other] = [at for (to, _), at in arrived.items() if to != CUSTOMER]
    assert reply - ack >= 0.5  # the reply waited for the acknowledgement's answer
    assert abs(other - ack) < 0.5  # the other customer's did not
    assert arrived[(CUSTOMER, "Ya está en camino")] == reply

"""Processing stored WhatsApp messages: every message type, threading, ordering, statuses."""

import time

import pytest
from sqlalchemy import func, select

from bot.worker.retries import process_event
from store.errors import ConcurrentUpdate
from store.events import Audit, list_events
from store.inbound import list_failed_events
from store.lifecycle import SYSTEM, Action, Actor, ActorKind
from store.models import (
    Contact,
    Direction,
    EventStatus,
    InboundEvent,
    Message,
    OutboxMessage,
    Task,
    TaskStatus,
)
from store.outbox import queue_customer_message
from store.tasks import transition_task
from tests.bot.whatsapp_kit import (
    BUTTON,
    CUSTOMER,
    IMAGE,
    INTERACTIVE,
    LOCATION,
    REFERRAL,
    TEXT,
    live,
    make_settings,
    message_body,
    post,
    reaction,
    status_body,
)

ANA = Actor(ActorKind.AGENT, "ana")


@pytest.fixture
def app(tmp_path, database_url, redis_url):
    with live(make_settings(tmp_path, database_url, redis_url)) as running:
        yield running


def deliver(app, body: dict) -> list[str]:
    """Posts a signed body and processes its events; returns the outcomes."""
    services, url = app
    assert post(url, body).status_code == 200
    return process_all(services)


def process_all(services) -> list[str]:
    with services.db.transaction() as session:
        ids = session.scalars(
            select(InboundEvent.id)
            .where(InboundEvent.status == EventStatus.PENDING)
            .order_by(InboundEvent.id)
        ).all()
    return [process_event(services, event_id) for event_id in ids]


def tasks(services) -> list[Task]:
    with services.db.transaction() as session:
        return list(session.scalars(select(Task).order_by(Task.id)))


def inbound(services, wamid: str) -> Message:
    with services.db.transaction() as session:
        return session.scalars(select(Message).where(Message.provider_message_id == wamid)).one()


def outbox(services, kind: str) -> list[OutboxMessage]:
    with services.db.transaction() as session:
        return list(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)))


@pytest.mark.parametrize("user_id", [None, "ES.1234567890123456"])
def test_a_text_opens_an_assigned_task_and_queues_the_ack(app, user_id):
    services, _ = app
    assert deliver(app, message_body(TEXT, wamid="wamid.T1", user_id=user_id)) == ["created"]
    [task] = tasks(services)
    assert (task.status, task.assignee_id, task.team, task.rule) == (
        TaskStatus.ASSIGNED,
        "ana",
        "support",
        "fallback",
    )
    assert task.language == "es"
    assert task.first_response_due is not None
    [ack] = outbox(services, "ack")
    assert ack.payload["text"] == f"Hola Lucía, #{task.number}: respondemos en 4 h."
    assert inbound(services, "wamid.T1").task_id == task.id
    with services.db.transaction() as session:
        contact = session.scalars(select(Contact)).one()
        actions = [e.action for e in list_events(session, task_id=task.id)]
    assert (contact.wa_id, contact.user_id, contact.name) == ("34600111222", user_id, "Lucía Pérez")
    assert contact.last_inbound_at is not None
    assert actions == [Audit.CREATED, Action.ASSIGN, Audit.ROUTED]
    assert len(outbox(services, "assigned")) == 1


@pytest.mark.parametrize(
    ("message", "text", "extra"),
    [
        (IMAGE, "La caja llegó rota", {"media_id": "1479537139650973"}),
        (LOCATION, "[location] Oficina, Gran Vía 1, Madrid (40.41678, -3.70379)", {}),
        (BUTTON, "Me interesa", {"button_payload": "promo_black_friday"}),
        (INTERACTIVE, "Sí, quiero", {"button_payload": "promo_yes"}),
        (REFERRAL, "Quiero más información", {}),
    ],
    ids=["image", "location", "template-button", "interactive-button", "referral"],
)
def test_each_message_type_gets_a_task_text(app, message, text, extra):
    services, _ = app
    assert deliver(app, message_body(message, wamid="wamid.M")) == ["created"]
    stored = inbound(services, "wamid.M")
    assert stored.text == text
    assert stored.type == message["type"]
    if "media_id" in extra:
        assert stored.media_id == extra["media_id"]
    if "button_payload" in extra:
        assert stored.payload["button_payload"] == extra["button_payload"]


@pytest.mark.parametrize("message", [BUTTON, REFERRAL], ids=["button", "referral"])
def test_campaign_replies_match_the_campaign_rule(app, message):
    services, _ = app
    deliver(app, message_body(message, wamid="wamid.C"))
    [task] = tasks(services)
    assert (task.rule, task.category, task.team) == ("campaign", "marketing", "marketing")
    assert task.title == "Lead — Lucía Pérez"


def test_a_follow_up_threads_into_the_open_task_and_notifies_the_assignee(app):
    services, _ = app
    deliver(app, message_body(TEXT, wamid="wamid.F1"))
    more = {"type": "text", "text": {"body": "Es el pedido 4411"}}
    assert deliver(app, message_body(more, wamid="wamid.F2")) == ["threaded"]
    [task] = tasks(services)
    assert inbound(services, "wamid.F2").task_id == task.id
    with services.db.transaction() as session:
        events = list_events(session, task_id=task.id)
    assert events[-1].action == Audit.MESSAGE
    assert events[-1].details["text"] == "Es el pedido 4411"
    assert len(outbox(services, "follow_up")) == 1
    assert len(outbox(services, "ack")) == 1


def test_a_reaction_without_an_open_task_opens_nothing(app):
    services, _ = app
    assert deliver(app, message_body(reaction("wamid.OUT"), wamid="wamid.R")) == ["recorded"]
    assert tasks(services) == []
    assert inbound(services, "wamid.R").payload["reaction_to"] == "wamid.OUT"


def test_a_reaction_threads_into_the_open_task(app):
    services, _ = app
    deliver(app, message_body(TEXT, wamid="wamid.T"))
    assert deliver(app, message_body(reaction("wamid.T"), wamid="wamid.R")) == ["threaded"]
    assert len(tasks(services)) == 1


def test_an_ignored_message_opens_no_task(app):
    services, _ = app
    thanks = {"type": "text", "text": {"body": "gracias!"}}
    assert deliver(app, message_body(thanks, wamid="wamid.G")) == ["recorded"]
    assert tasks(services) == []


def move(services, actor, *actions) -> None:
    """Applies `actions` to the only task, again when the app's background dispatch (which
    settles SLA pauses) changed the task in between."""
    for attempt in range(5):
        try:
            with services.db.transaction() as session:
                task = session.scalars(select(Task)).one()
                for action in actions:
                    transition_task(session, task=task, action=action, actor=actor)
            return
        except ConcurrentUpdate:
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("the task kept changing")


def test_a_waiting_task_resumes_and_a_closed_one_reopens(app):
    services, _ = app
    deliver(app, message_body(TEXT, wamid="wamid.W1"))
    move(services, ANA, Action.ACCEPT, Action.WAIT)
    deliver(app, message_body({"type": "text", "text": {"body": "aquí está"}}, wamid="wamid.W2"))
    assert tasks(services)[0].status == TaskStatus.IN_PROGRESS
    move(services, SYSTEM, Action.CLOSE)
    again = {"type": "text", "text": {"body": "vuelve a fallar"}}
    assert deliver(app, message_body(again, wamid="wamid.W3")) == ["reopened"]
    [task] = tasks(services)
    assert task.status == TaskStatus.ASSIGNED


def test_messages_are_applied_in_whatsapp_timestamp_order(app):
    services, url = app
    now = int(time.time())
    first = {"type": "text", "text": {"body": "Primero: mi pedido no llegó"}}
    second = {"type": "text", "text": {"body": "Segundo: es el 4411"}}
    # The later message arrives (and is stored) first.
    assert post(url, message_body(second, wamid="wamid.O2", at=now)).status_code == 200
    assert post(url, message_body(first, wamid="wamid.O1", at=now - 30)).status_code == 200
    with services.db.transaction() as session:
        later = session.scalars(
            select(InboundEvent.id).where(InboundEvent.provider_event_id == "wamid.O2")
        ).one()
    assert process_event(services, later) == "threaded"
    [task] = tasks(services)
    assert task.title.startswith("Primero")
    assert process_all(services) == []


def test_a_message_without_a_sender_is_kept_as_failed_with_the_reason(app):
    services, _ = app
    body = message_body(TEXT, wamid="wamid.NOSENDER")
    value = body["entry"][0]["changes"][0]["value"]
    del value["contacts"]
    del value["messages"][0]["from"]
    assert deliver(app, body) == ["failed"]
    with services.db.transaction() as session:
        [failed] = list_failed_events(session)
    assert "no sender" in failed.error


def test_an_unknown_message_type_is_processed_from_the_raw_json(app):
    services, _ = app
    poll = {"type": "poll", "poll": {"text": "¿Cuál prefieres?"}}
    assert deliver(app, message_body(poll, wamid="wamid.P")) == ["created"]
    stored = inbound(services, "wamid.P")
    assert (stored.text, stored.payload["parsed_by"]) == ("¿Cuál prefieres?", "raw")


def test_statuses_update_the_outbound_message_and_a_failure_is_audited(app):
    services, _ = app
    deliver(app, message_body(TEXT, wamid="wamid.S1"))
    with services.db.transaction() as session:
        reply = session.scalars(
            select(Message).where(Message.direction == Direction.OUTBOUND)
        ).one()
        reply.provider_message_id = "wamid.OUT1"
    assert deliver(app, status_body("wamid.OUT1", "delivered")) == ["status"]
    assert deliver(app, status_body("wamid.OUT1", "sent")) == ["status"]  # late: ignored
    assert inbound(services, "wamid.OUT1").status == "delivered"
    error = {
        "code": 131047,
        "title": "Re-engagement message",
        "error_data": {"details": "More than 24 hours have passed"},
    }
    assert deliver(app, status_body("wamid.OUT1", "failed", errors=[error])) == ["status"]
    failed = inbound(services, "wamid.OUT1")
    assert failed.status == "failed"
    assert "131047" in failed.error
    with services.db.transaction() as session:
        last = list_events(session, task_id=failed.task_id)[-1]
    assert last.action == Audit.DELIVERY_FAILED
    assert "More than 24 hours" in last.details["error"]


def test_an_agent_reply_is_queued_only_once_per_key(app):
    services, _ = app
    deliver(app, message_body(TEXT, wamid="wamid.Q"))
    with services.db.transaction() as session:
        contact = session.scalars(select(Contact)).one()
        first = queue_customer_message(
            session, contact=contact, kind="reply", text="hola", dedupe_key="reply:1"
        )
        second = queue_customer_message(
            session, contact=contact, kind="reply", text="hola", dedupe_key="reply:1"
        )
    assert first is not None and second is None


def test_a_customer_known_only_by_bsuid_gets_a_task(app):
    services, _ = app
    body = message_body(TEXT, wamid="wamid.BSUID")
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": "Lucía Pérez"}, "user_id": "ES.7777777777"}]
    message = value["messages"][0]
    del message["from"]
    message["from_user_id"] = "ES.7777777777"
    assert deliver(app, body) == ["created"]
    with services.db.transaction() as session:
        contact = session.scalars(select(Contact)).one()
    assert (contact.wa_id, contact.user_id) == (None, "ES.7777777777")
    assert len(outbox(services, "ack")) == 1


def test_a_concurrent_task_update_is_redone_not_failed(app, monkeypatch):
    import bot.usecases.messages

    services, url = app
    assert post(url, message_body(TEXT, wamid="wamid.RACE")).status_code == 200
    real, calls = bot.usecases.messages._apply, []

    def flaky(*args):
        calls.append(1)
        if len(calls) == 1:
            raise ConcurrentUpdate("the task was changed by someone else just now")
        return real(*args)

    monkeypatch.setattr(bot.usecases.messages, "_apply", flaky)
    assert process_all(services) == ["created"]
    assert len(calls) == 2
    with services.db.transaction() as session:
        assert list_failed_events(session) == []


def test_a_failing_event_is_set_aside_and_the_rest_of_its_batch_applied(app, monkeypatch):
    import bot.usecases.messages
    from bot.usecases.messages import apply_pending
    from store.types import utcnow

    services, url = app
    for n in range(4):
        body = message_body({"type": "text", "text": {"body": f"Pedido {n}"}},
                            wamid=f"wamid.BATCH{n}", wa_id=f"3460000000{n}")
        assert post(url, body).status_code == 200
    real = bot.usecases.messages._apply

    def broken_for_the_third(session, config, event, now):
        if event.provider_event_id == "wamid.BATCH2":
            raise RuntimeError("the CRM lookup timed out")
        return real(session, config, event, now)

    monkeypatch.setattr(bot.usecases.messages, "_apply", broken_for_the_third)
    with services.db.transaction() as session:
        applied = apply_pending(session, config=services.rules.current, limit=25, now=utcnow())
    assert sorted(applied.outcomes.values()) == ["created", "created", "created", "retrying"]
    assert [event.provider_event_id for event in applied.retries] == ["wamid.BATCH2"]
    assert sorted(task.title for task in tasks(services)) == ["Pedido 0", "Pedido 1", "Pedido 3"]
    with services.db.transaction() as session:
        statuses = dict(session.execute(select(InboundEvent.provider_event_id,
                                               InboundEvent.status)).all())
        inbound_messages = select(func.count(Message.id)).where(
            Message.direction == Direction.INBOUND)
        assert session.scalar(inbound_messages) == 3  # nothing of BATCH2 kept
    assert statuses["wamid.BATCH2"] == EventStatus.PENDING
    assert {statuses[f"wamid.BATCH{n}"] for n in (0, 1, 3)} == {EventStatus.PROCESSED}


def _apply_batch(services):
    from bot.usecases.messages import apply_pending
    from store.types import utcnow

    with services.db.transaction() as session:
        applied = apply_pending(session, config=services.rules.current, limit=25, now=utcnow())
    return [applied.outcomes[event_id] for event_id in sorted(applied.outcomes)]


def test_a_batch_applies_a_customers_second_message_after_the_first(app):
    services, url = app
    now = int(time.time())
    first = {"type": "text", "text": {"body": "Mi pedido no llegó"}}
    second = {"type": "text", "text": {"body": "Es el 4411"}}
    other = {"type": "text", "text": {"body": "¿Tenéis stock?"}}
    assert post(url, message_body(first, wamid="wamid.S1", at=now - 2)).status_code == 200
    assert post(url, message_body(other, wamid="wamid.S2", at=now - 1,
                                  wa_id="34600999888")).status_code == 200
    assert post(url, message_body(second, wamid="wamid.S3", at=now)).status_code == 200

    assert _apply_batch(services) == ["created", "created", "threaded"]
    first_task = inbound(services, "wamid.S1").task_id
    assert inbound(services, "wamid.S3").task_id == first_task
    [follow_up] = outbox(services, "follow_up")
    assert follow_up.task_id == first_task and follow_up.agent_id


def test_a_batch_that_fills_in_a_customers_bsuid_keeps_one_contact(app):
    """The second message names the customer by BSUID alone while the first one, under the
    phone number, is what tells that BSUID: the batch is applied again, flushing as usual."""
    services, url = app
    assert deliver(app, message_body(TEXT, wamid="wamid.U0")) == ["created"]
    now = int(time.time())
    with_both = message_body({"type": "text", "text": {"body": "Otra cosa"}}, wamid="wamid.U1",
                             at=now - 1, user_id="ES.5555555555")
    by_bsuid = message_body({"type": "text", "text": {"body": "Y otra"}}, wamid="wamid.U2",
                            at=now)
    value = by_bsuid["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": "Lucía Pérez"}, "user_id": "ES.5555555555"}]
    del value["messages"][0]["from"]
    value["messages"][0]["from_user_id"] = "ES.5555555555"
    assert post(url, with_both).status_code == 200
    assert post(url, by_bsuid).status_code == 200

    assert _apply_batch(services) == ["threaded", "threaded"]
    with services.db.transaction() as session:
        contact = session.scalars(select(Contact)).one()
    assert (contact.wa_id, contact.user_id) == (CUSTOMER, "ES.5555555555")
    assert len(tasks(services)) == 1


@pytest.mark.parametrize(("profile", "stored"), [
    ("   ", None), ("\u3000", None), ("  Lucía \u3000 Pérez ", "Lucía Pérez"),
    ("L" * 300, "L" * 200),
])
def test_blank_or_overlong_profile_names_are_normalised_at_intake(app, profile, stored):
    """Issue 14 item 10: a name of spaces crashed `{contact.first_name}` (no task, no ack);
    a name over the column's 200 characters failed on PostgreSQL."""
    services, _ = app
    assert deliver(app, message_body(TEXT, wamid="wamid.NAME", name=profile)) == ["created"]
    with services.db.transaction() as session:
        assert session.scalars(select(Contact.name)).one() == stored
    [ack] = outbox(services, "ack")
    assert ack.payload["text"].startswith("Hola ")

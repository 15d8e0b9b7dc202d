"""Task cards, `show` and `reply` around what the customer wrote and the 24-hour window
(issue 15 items 4 and 5)."""

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from notifiers.commands import run_command
from notifiers.grammar import CommandRequest
from notifiers.notifications import MESSAGE_LIMIT, Notification, build_notification
from notifiers.queueing import queue_notification
from notifiers.slack import render_slack
from notifiers.telegram import MAX_TEXT, render_telegram
from rules.config import TemplateRef
from store.events import Audit, record_event
from store.messages import record_inbound_message
from store.models import OutboxMessage
from store.outbox import queue_customer_message
from tests.notifiers.helpers import NOW, config, make_task

CONFIG = config()


def customer_writes(session, task, text, *, number=1, **extra):
    record_inbound_message(session, provider_message_id=f"wamid.{number}",
                           contact_id=task.contact_id, task_id=task.id, type="text",
                           text=text, media_id=None, payload={}, at=NOW, **extra)


def queued_card(session, task, **details) -> Notification:
    queue_notification(session, config=CONFIG, kind="assigned", task=task, agent_id="ana",
                       dedupe_key=f"card-{task.id}", details=details)
    row = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "assigned")).one()
    return Notification.from_dict(row.payload["notification"])


def test_a_card_quotes_the_customers_latest_message_bounded(db):
    with db.transaction() as session:
        task = make_task(session, assignee="ana")
        customer_writes(session, task, "first")
        customer_writes(session, task, "¿Tenéis la talla 42? " * 200, number=2)
        card = queued_card(session, task, why="logistics · least loaded (0 open of 5)")
    assert card.text.startswith("¿Tenéis la talla 42?") and len(card.text) == MESSAGE_LIMIT
    assert ("Why you", "logistics · least loaded (0 open of 5)") in card.fields
    assert ("CRM", "lead") in card.fields
    assert ("Reply window", "closes Wed 25 Nov 10:00") in card.fields


def test_media_shows_its_kind_and_file_name(db):
    with db.transaction() as session:
        task = make_task(session, assignee="ana")
        record_inbound_message(session, provider_message_id="wamid.m", contact_id=task.contact_id,
                               task_id=task.id, type="document", text="[document]",
                               media_id="MEDIA1", payload={"filename": "factura.pdf"}, at=NOW)
        card = queued_card(session, task)
    assert ("Media", "document: factura.pdf") in card.fields


def test_every_field_is_rendered_within_the_channels_limits(db):
    with db.transaction() as session:
        card = build_notification("breach", config=CONFIG, task=make_task(session, assignee="ana"),
                                  details={"step": "notify_supervisor", "agent": "ana",
                                           "customer_text": "x" * 5000, "why": "y" * 5000,
                                           "media": "image", "deadline": "resolution"})
    card = replace(card, fields=card.fields + (("More", "z"),) * 6)
    sections = [b for b in render_slack(card)["blocks"] if "fields" in b]
    assert [len(b["fields"]) for b in sections] == [10, len(card.fields) - 10]
    assert len(render_telegram(card)["text"].encode("utf-16-le")) // 2 <= MAX_TEXT


def test_show_has_the_conversation_and_the_routing_reasons(db):
    with db.transaction() as session:
        task = make_task(session, assignee="ana")
        customer_writes(session, task, "¿Dónde está mi pedido?")
        queue_customer_message(session, contact=task.contact, kind="ack", text="Lo miramos",
                               dedupe_key="ack", task=task)
        candidates = [{"agent": "ana", "chosen": True, "reason": "chosen: least loaded"},
                      {"agent": "pablo", "chosen": False, "reason": "skipped: away"}]
        record_event(session, task=task, actor="system", action=Audit.ROUTED, at=NOW,
                     details={"summary": "assigned to ana: least loaded",
                              "candidates": candidates})
    shown = run_command(db, CONFIG, CommandRequest("slack", "U0ANA", "show T-1"), now=NOW).text
    assert "Conversation:\n  Tue 24 Nov 10:00 customer: ¿Dónde está mi pedido?\n" in shown
    assert "us: Lo miramos" in shown
    assert "Routing: assigned to ana: least loaded\n  ana: chosen: least loaded\n" \
           "  pablo: skipped: away" in shown
    assert "Reply window: closes Wed 25 Nov 10:00" in shown


@pytest.mark.parametrize(("template", "expected"), [
    (None, "outside the 24-hour window (the window closed Wed 25 Nov 10:00) and rules.yaml "
           "has no out_of_window_template"),
    (TemplateRef(name="opsbot_task_update", language="es"),
     "Outside the 24-hour window: it will go as the approved template `opsbot_task_update`."),
])
def test_a_reply_outside_the_window(db, template, expected):
    rules = CONFIG.model_copy(update={"out_of_window_template": template})
    with db.transaction() as session:
        make_task(session, assignee="ana")
    later = NOW + timedelta(hours=25)
    answer = run_command(db, rules, CommandRequest("slack", "U0ANA", "reply T-1 Ya llegó"),
                         now=later)
    assert expected in answer.text
    assert answer.ok is (template is not None)
    with db.transaction() as session:
        replies = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "reply"))
        assert len(list(replies)) == (1 if template else 0)
    shown = run_command(db, rules, CommandRequest("slack", "U0ANA", "show T-1"), now=later).text
    assert "Reply window: closed Wed 25 Nov 10:00: " in shown

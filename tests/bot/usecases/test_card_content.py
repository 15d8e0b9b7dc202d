"""What an agent's card says about the customer: their words, CRM status and tags, why the
task came to them, and the reply window (issue 15 items 4 and 5)."""

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.usecases.conversation import apply_message
from bot.usecases.messages import apply_pending
from bot.webhooks.whatsapp import event_rows
from bot.whatsapp.parsing import InboundMessage
from notifiers.notifications import Notification
from notifiers.slack import render_slack
from notifiers.telegram import render_telegram
from rules import parse_rules
from sandbox.inbound import whatsapp_message
from store.contacts import upsert_contact
from store.inbound import insert_events
from store.models import OutboxMessage

NOW = datetime(2026, 11, 24, 13, 5, tzinfo=UTC)  # 14:05 in Madrid
RULES = """
version: 1
timezone: Europe/Madrid
business_hours: {mon-sun: "00:00-24:00"}
sla: {normal: {first_response: 4h, resolution: 24h}}
teams:
  support: {supervisor: ana, strategy: least_loaded}
agents:
  - {id: ana, name: Ana, teams: [support], skills: [hardware], slack: U0ANA, telegram: 111,
     capacity: 5}
rules:
  - name: fault-report
    when: {keywords: [no funciona]}
    then: {category: support, title: "Avería — {contact.name}", team: support,
           skills: [hardware]}
"""
WORDS = "Hola, la impresora <HP 4> no funciona desde ayer & no imprime nada"


@pytest.fixture
def card(db):
    config = parse_rules(RULES)
    with db.transaction() as session:
        contact, _ = upsert_contact(session, wa_id="34600000001", user_id=None,
                                    name="Carla Ruiz", now=NOW)
        contact.crm_status, contact.tags = "customer", ["b2b", "hardware"]
        message = InboundMessage(wamid="wamid.C1", wa_id="34600000001", user_id=None,
                                 name="Carla Ruiz", type="text", at=NOW, text=WORDS)
        assert apply_message(session, config=config, message=message, now=NOW) == "created"
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "assigned")).one()
        return Notification.from_dict(row.payload["notification"])


def test_the_assigned_card_shows_the_customer_and_why_it_came_to_you(card):
    assert card.title == "New task T-1: Avería — Carla Ruiz"
    assert card.text == WORDS
    fields = dict(card.fields)
    assert fields["CRM"] == "customer · tags: b2b, hardware"
    assert fields["Why you"] == "support · skill hardware · least loaded (0 open of 5)"
    assert fields["Reply window"] == "closes Wed 25 Nov 14:05"


def test_slack_and_telegram_render_it_escaped(card):
    slack = str(render_slack(card)["blocks"])
    assert "&lt;HP 4&gt; no funciona desde ayer &amp; no imprime" in slack
    assert "Why you" in slack and "closes Wed 25 Nov 14:05" in slack
    telegram = render_telegram(card)["text"]
    assert "<blockquote>Hola, la impresora &lt;HP 4&gt;" in telegram
    assert "<b>CRM:</b> customer · tags: b2b, hardware" in telegram


def test_cards_of_a_drain_batch_show_each_customer_s_words(db):
    """A drain applies many messages in one savepoint without flushing between customers:
    each new task's card still carries its own customer's message."""
    config = parse_rules(RULES)
    words = {f"3460000001{n}": f"Mi impresora {n} no funciona" for n in range(3)}
    rows = [row for wa_id, text in words.items() for row in event_rows(json.dumps(
        whatsapp_message(wa_id=wa_id, name=f"Cliente {wa_id[-1]}", phone_id="1000000001",
                         message={"type": "text", "text": {"body": text}})).encode())]
    with db.transaction() as session:
        insert_events(session, rows=rows)
    with db.transaction() as session:
        applied = apply_pending(session, config=config, limit=25, now=datetime.now(UTC))
        assert sorted(map(str, applied.outcomes.values())) == ["created"] * 3
        cards = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "assigned"))
        shown = sorted(Notification.from_dict(card.payload["notification"]).text
                       for card in cards)
    assert shown == sorted(words.values())

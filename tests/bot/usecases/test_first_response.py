"""The first response is recorded when WhatsApp accepts an agent's reply: not on accept, not
when the reply is only queued, not when WhatsApp refuses it, never for the acknowledgement."""

from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from bot.usecases.delivery import Outlets, send_customer_message
from notifiers.commands import run_command
from notifiers.errors import PermanentDeliveryError
from notifiers.grammar import CommandRequest
from store.models import Contact, Message, OutboxMessage
from store.outbox import queue_customer_message
from store.tasks import get_task
from store.timers import has_timers_to_schedule
from store.types import utcnow
from tests.notifiers.helpers import NOW, config, make_task, simple_assign

CONFIG = config()


@dataclass
class FakeWhatsApp:
    """Answers each send with a wamid, or refuses every send for good when `refuse`."""

    refuse: bool = False
    sent: list[str] = field(default_factory=list)

    def send_text(self, *, to: str, text: str, sender: str | None = None) -> str:
        if self.refuse:
            raise PermanentDeliveryError("WhatsApp: (#131026) message undeliverable")
        self.sent.append(text)
        return f"wamid.OUT{len(self.sent)}"


def command(db, text: str) -> str:
    request = CommandRequest("slack", "U0ANA", text)
    return run_command(db, CONFIG, request, now=NOW, assign=simple_assign).text


def accepted_task(db) -> int:
    with db.transaction() as session:
        number = make_task(session, assignee="ana").id
    assert "accepted" in command(db, f"accept {number}")
    return number


def customer_rows(db, kind: str) -> list[OutboxMessage]:
    with db.transaction() as session:
        query = select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
        rows = list(session.scalars(query))
        for contact in session.scalars(select(Contact)):
            contact.last_inbound_at = utcnow()  # the send happens now: inside the window
    return rows


def send(db, row: OutboxMessage, whatsapp: FakeWhatsApp) -> None:
    send_customer_message(db, Outlets(agents={}, whatsapp=whatsapp, config=CONFIG), row)


def task_of(db, number: int):
    with db.transaction() as session:
        return get_task(session, ref=number)


def test_the_first_reply_whatsapp_accepts_is_the_first_response(db):
    number = accepted_task(db)
    assert task_of(db, number).first_response_at is None  # accepted: the customer heard nothing
    assert command(db, f"reply {number} Mañana llega").startswith("Sent to the customer")
    assert command(db, f"reply {number} Por la mañana").startswith("Sent to the customer")
    assert task_of(db, number).first_response_at is None  # queued is not answered
    first, second = customer_rows(db, "reply")
    before, whatsapp = task_of(db, number).timer_generation, FakeWhatsApp()
    send(db, first, whatsapp)
    with db.transaction() as session:
        task = get_task(session, ref=number)
        sent = session.get(Message, first.payload["message_id"]).sent_at
        assert (task.first_response_at, task.timer_generation) == (sent, before + 1)
        assert has_timers_to_schedule(session)  # the first-response timers are re-planned
    send(db, second, whatsapp)
    assert whatsapp.sent == ["Mañana llega", "Por la mañana"]
    assert task_of(db, number).first_response_at == sent  # only the first reply counts


def test_a_reply_whatsapp_refuses_is_no_first_response(db):
    number = accepted_task(db)
    command(db, f"reply {number} Mañana llega")
    [reply] = customer_rows(db, "reply")
    with pytest.raises(PermanentDeliveryError):
        send(db, reply, FakeWhatsApp(refuse=True))
    assert task_of(db, number).first_response_at is None


def test_the_automatic_acknowledgement_is_no_first_response(db):
    with db.transaction() as session:
        task = make_task(session, assignee="ana")
        number = task.id
        queue_customer_message(session, contact=task.contact, kind="ack", text="Recibido",
                               dedupe_key=f"ack-{number}", task=task)
    [ack] = customer_rows(db, "ack")
    whatsapp = FakeWhatsApp()
    send(db, ack, whatsapp)
    assert whatsapp.sent == ["Recibido"]
    assert task_of(db, number).first_response_at is None

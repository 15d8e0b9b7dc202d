"""What goes to a customer on WhatsApp is bounded: a reply above 4,096 characters is refused
with the limit named, a template echoes at most 500 characters of the customer's own text,
and no rendered message is longer than 4,096 characters."""

import pytest
from sqlalchemy import select

from bot.usecases.conversation import apply_message
from bot.whatsapp.parsing import InboundMessage
from notifiers.commands import run_command
from notifiers.grammar import CommandRequest
from notifiers.texts import ECHO_LIMIT, ELLIPSIS, WHATSAPP_TEXT_LIMIT
from store.events import list_events
from store.models import Contact, OutboxMessage
from tests.notifiers.helpers import NOW, RULES, config, make_task, simple_assign

CONFIG = config()


def echoing(template: str):
    """The test rules with one rule that acknowledges with `template`."""
    rule = f'  - name: echo\n    then: {{team: logistics, reply: {{es: "{template}"}}}}\n'
    return config(RULES + "rules:\n" + rule)


def rows(db, kind):
    with db.transaction() as session:
        query = select(OutboxMessage).where(OutboxMessage.kind == kind)
        return [row.payload["text"] for row in session.scalars(query)]


def slack(db, user, text, rules=CONFIG):
    return run_command(db, rules, CommandRequest("slack", user, text), now=NOW,
                       assign=simple_assign)


def customer_writes(db, rules, text, name="Carmen Ruiz"):
    message = InboundMessage(wamid="wamid.LONG", wa_id="34600000009", user_id=None, name=name,
                             type="text", at=NOW, text=text)
    with db.transaction() as session:
        assert apply_message(session, config=rules, message=message, now=NOW) == "created"


def test_a_reply_longer_than_whatsapp_takes_is_refused_with_the_limit(db):
    with db.transaction() as session:
        number = make_task(session, assignee="ana").id
    answer = slack(db, "U0ANA", f"reply {number} " + "a" * 5_000)
    assert not answer.ok
    assert answer.text == ("A WhatsApp message holds at most 4,096 characters; yours has "
                           "5,000. Send it in shorter replies.")
    assert rows(db, "reply") == []
    with db.transaction() as session:
        assert "reply" not in [e.action for e in list_events(session, task_id=number)]
    assert slack(db, "U0ANA", f"reply {number} " + "a" * WHATSAPP_TEXT_LIMIT).ok
    assert rows(db, "reply") == ["a" * WHATSAPP_TEXT_LIMIT]


def test_the_acknowledgement_echoes_at_most_500_characters(db):
    customer_writes(db, echoing("Recibido: {message.text}"), "z" * 100_000)
    [ack] = rows(db, "ack")
    assert ack == "Recibido: " + "z" * (ECHO_LIMIT - 1) + ELLIPSIS


@pytest.mark.parametrize("name", ["N" * 200, "Carmen Ruiz"])
def test_a_rendered_message_is_never_longer_than_whatsapp_takes(db, name):
    template = " ".join(["{message.text} {contact.name}"] * 10)
    customer_writes(db, echoing(template), "w" * 100_000, name=name)
    [ack] = rows(db, "ack")
    assert len(ack) <= WHATSAPP_TEXT_LIMIT and ack.endswith(ELLIPSIS)
    assert ack.startswith("w" * (ECHO_LIMIT - 1) + ELLIPSIS + " ")


def test_the_closing_message_is_never_longer_than_whatsapp_takes(db):
    rules = config(RULES.replace('es: "Hola {contact.first_name}, cerramos',
                                 'es: "' + "{contact.name} {task.title} " * 20 + 'cerramos'))
    with db.transaction() as session:
        number = make_task(session, assignee="ana").id
        session.scalars(select(Contact)).one().name = "C" * 200
    for verb in ("accept", "start", "close"):
        assert slack(db, "U0ANA", f"{verb} {number}", rules=rules).ok
    [closing] = rows(db, "closing")
    assert len(closing) == WHATSAPP_TEXT_LIMIT and closing.endswith(ELLIPSIS)
    assert closing.startswith("C" * 200 + " Cambio de envío ")

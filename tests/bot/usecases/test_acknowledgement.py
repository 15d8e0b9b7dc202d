"""The acknowledgement promises the real deadline on the business calendar, in the customer's
language, not the policy's duration (issue 15 item 1): a fault reported on a Monday at 19:17
is answered by Tuesday 09:30, not "in 30 min"."""

from pathlib import Path

import pytest
from sqlalchemy import select

from bot.usecases.conversation import apply_message
from bot.whatsapp.parsing import InboundMessage
from rules import load_rules
from store.models import OutboxMessage, Task
from tests.rules.helpers import madrid

SHIPPED = load_rules(Path(__file__).parents[3] / "rules.yaml")
MONDAY_EVENING = madrid(2026, 11, 30, 19, 17)  # closed until Tuesday 09:00


@pytest.mark.parametrize(("text", "ack"), [
    ("Hola, la cafetera no enciende",
     "Hola Carmen, hemos abierto la incidencia #{n}. Un técnico te responderá mañana entre las "
     "9:00 y las 9:30."),
    ("Hi, my coffee machine is broken",
     "Hi Carmen, we opened ticket #{n}. A technician will answer tomorrow between "
     "9:00\u202fAM and 9:30\u202fAM."),
])
def test_an_after_hours_fault_is_promised_the_next_morning_not_the_policy_duration(
        db, text, ack):
    message = InboundMessage(wamid="wamid.ETA", wa_id="34600000015", user_id=None,
                             name="Carmen Ruiz", type="text", at=MONDAY_EVENING, text=text)
    with db.transaction() as session:
        assert apply_message(session, config=SHIPPED, message=message,
                             now=MONDAY_EVENING) == "created"
    with db.transaction() as session:
        task = session.scalars(select(Task)).one()
        [sent] = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "ack"))
        assert (task.rule, task.sla_policy) == ("fault-report", "fault")
        assert sent.payload["text"] == ack.format(n=task.number)
        assert "30 min" not in sent.payload["text"]

"""SQL parameters and rows carry customers' data: database errors, as logged and as kept for
`opsbot events failed`, never quote them."""

import pytest
from sqlalchemy.exc import IntegrityError

from store.errors import describe_error
from store.inbound import insert_events
from store.models import InboundEvent

PHONE = "34600999111"


def test_a_database_error_is_described_without_customer_data(db):
    with db.transaction() as session:
        insert_events(session, rows=[_row()])
    with pytest.raises(IntegrityError) as raised, db.transaction() as session:
        session.add(InboundEvent(**_row()))
        session.flush()
    assert "SQL parameters hidden" in str(raised.value)
    described = describe_error(raised.value)
    assert PHONE not in described and described.startswith("IntegrityError (")


def test_other_errors_are_described_by_class_and_message():
    assert describe_error(RuntimeError("the CRM timed out")) == "RuntimeError: the CRM timed out"


def _row() -> dict:
    return {"provider": "whatsapp", "provider_event_id": f"wamid.{PHONE}", "kind": "message",
            "contact_key": PHONE, "occurred_at": None, "raw_body": PHONE.encode(),
            "status": "pending", "error": None}

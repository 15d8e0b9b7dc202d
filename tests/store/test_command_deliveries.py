"""Agent command deliveries: each provider key is stored once, already processed."""

import threading
from datetime import UTC, datetime

from sqlalchemy import select

from store.inbound import record_command_delivery
from store.models import EventStatus, InboundEvent

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def record(session, key, *, channel="slack", text="accept T-1"):
    return record_command_delivery(session, channel=channel, user_id="U0ANA", key=key,
                                   text=text, now=NOW)


def test_a_key_is_recorded_once_per_channel(db):
    with db.transaction() as session:
        assert record(session, "trigger-1") is True
        assert record(session, "trigger-1", text="something else") is False
        assert record(session, "trigger-1", channel="telegram") is True
    with db.transaction() as session:
        events = list(session.scalars(select(InboundEvent).order_by(InboundEvent.id)))
    assert [(e.provider, e.provider_event_id) for e in events] == [
        ("slack", "trigger-1"), ("telegram", "trigger-1")]
    first = events[0]
    assert (first.kind, first.contact_key, first.raw_body) == (
        "command", "slack:U0ANA", b"accept T-1")
    assert (first.status, first.processed_at) == (EventStatus.PROCESSED, NOW)


def test_a_key_recorded_by_an_earlier_transaction_is_a_replay(db):
    with db.transaction() as session:
        assert record(session, "update-9", channel="telegram") is True
    with db.transaction() as session:
        assert record(session, "update-9", channel="telegram") is False


def test_a_concurrent_delivery_of_the_key_waits_and_is_a_replay(db):
    # The second transaction's INSERT waits for the first one's (PostgreSQL: on the unique
    # key; SQLite: for the writer) and, once it commits, skips the key: no IntegrityError.
    first_inserted, outcome = threading.Event(), []

    def second() -> None:
        first_inserted.wait(timeout=10)
        with db.transaction() as session:
            outcome.append(record(session, "trigger-7"))

    thread = threading.Thread(target=second)
    thread.start()
    with db.transaction() as session:
        assert record(session, "trigger-7") is True
        first_inserted.set()
        thread.join(timeout=0.5)
        assert thread.is_alive()  # waiting for this transaction
    thread.join(timeout=10)
    assert outcome == [False]

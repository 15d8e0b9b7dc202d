"""Raw inbound events: idempotent insert, ordering, failures and retries."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from store.inbound import (
    MAX_ATTEMPTS,
    earlier_pending_event_ids,
    get_event,
    insert_events,
    list_failed_events,
    record_failure,
    retry_events,
)
from store.models import EventStatus, InboundEvent

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def row(event_id: str, *, key: str = "34600", at: datetime = T0, **extra) -> dict:
    return {"provider": "whatsapp", "provider_event_id": event_id, "kind": "message",
            "contact_key": key, "occurred_at": at, "raw_body": b"{}", **extra}


def ids(db) -> dict[str, int]:
    with db.transaction() as session:
        return {e.provider_event_id: e.id for e in session.scalars(select(InboundEvent))}


def test_insert_is_idempotent_within_and_across_batches(db):
    with db.transaction() as session:
        insert_events(session, rows=[row("wamid.1"), row("wamid.1"), row("wamid.2")])
    with db.transaction() as session:
        insert_events(session, rows=[row("wamid.2"), row("wamid.3")])
    assert sorted(ids(db)) == ["wamid.1", "wamid.2", "wamid.3"]


def test_earlier_pending_events_of_the_same_customer_come_first(db):
    with db.transaction() as session:
        insert_events(session, rows=[
            row("late", at=T0 + timedelta(seconds=30)),
            row("early", at=T0),
            row("other-customer", key="34700", at=T0 - timedelta(hours=1)),
            row("earliest", at=T0 - timedelta(minutes=1)),
        ])
    known = ids(db)
    with db.transaction() as session:
        event = get_event(session, event_id=known["late"])
        found = earlier_pending_event_ids(session, event=event)
    assert found == [known["earliest"], known["early"]]


def test_failures_count_until_failed_and_retry_puts_them_back(db):
    with db.transaction() as session:
        insert_events(session, rows=[row("flaky"), row("broken")])
    known = ids(db)
    for _ in range(MAX_ATTEMPTS - 1):
        with db.transaction() as session:
            assert not record_failure(session, event_id=known["flaky"], reason="Redis down")
    with db.transaction() as session:
        assert record_failure(session, event_id=known["broken"], reason="bad", final=True)
        assert record_failure(session, event_id=known["flaky"], reason="still down")
    with db.transaction() as session:
        failed = list_failed_events(session)
        assert [e.provider_event_id for e in failed] == ["broken", "flaky"]
        assert retry_events(session, event_ids=[known["broken"]]) == [known["broken"]]
    with db.transaction() as session:
        event = get_event(session, event_id=known["broken"])
        assert (event.status, event.attempts, event.dispatched_at) == (EventStatus.PENDING, 0,
                                                                       None)
        assert retry_events(session) == [known["flaky"]]

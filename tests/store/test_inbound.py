"""Raw inbound events: idempotent insert, ordering, failures and retries."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from store.claims import hand_over
from store.inbound import (
    MAX_ATTEMPTS,
    earlier_pending_events,
    get_event,
    insert_events,
    list_failed_events,
    lock_free_events,
    note_failure,
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


def test_earlier_pending_events_of_the_same_customer_are_found(db):
    with db.transaction() as session:
        insert_events(session, rows=[
            row("late", at=T0 + timedelta(seconds=30)),
            row("early", at=T0),
            row("other-customer", key="34700", at=T0 - timedelta(hours=1)),
            row("earliest", at=T0 - timedelta(minutes=1)),
            row("later-still", at=T0 + timedelta(minutes=1)),
        ])
    known = ids(db)
    with db.transaction() as session:
        event = get_event(session, event_id=known["late"])
        found = earlier_pending_events(session, events=[event])
    assert sorted(e.id for e in found) == [known["early"], known["earliest"]]


def test_free_events_are_taken_oldest_first_and_held_ones_are_skipped(db):
    with db.transaction() as session:
        insert_events(session, rows=[row(f"wamid.{n}") for n in range(4)])
    known = ids(db)
    with db.transaction() as session:
        hand_over(session, InboundEvent, [known["wamid.1"]], owner="event-2-retry-1", now=T0)
    with db.transaction() as session:
        taken = lock_free_events(session, limit=2)
    assert [e.provider_event_id for e in taken] == ["wamid.0", "wamid.2"]


def test_failures_count_until_failed_and_retry_puts_them_back(db):
    with db.transaction() as session:
        insert_events(session, rows=[row("flaky"), row("broken")])
    known = ids(db)
    def fail(name: str, reason: str, final: bool = False) -> bool:
        with db.transaction() as session:
            event = get_event(session, event_id=known[name], for_update=True)
            return note_failure(event, reason=reason, final=final)

    for _ in range(MAX_ATTEMPTS - 1):
        assert not fail("flaky", "Redis down")
    assert fail("broken", "bad", final=True)
    assert fail("flaky", "still down")
    with db.transaction() as session:
        failed = list_failed_events(session)
        assert [e.provider_event_id for e in failed] == ["broken", "flaky"]
        assert retry_events(session, event_ids=[known["broken"]]) == [known["broken"]]
    with db.transaction() as session:
        event = get_event(session, event_id=known["broken"])
        assert (event.status, event.attempts, event.dispatched_at) == (EventStatus.PENDING, 0,
                                                                       None)
        assert retry_events(session) == [known["flaky"]]

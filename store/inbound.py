"""Raw inbound webhook events: stored before the 200, processed later, never dropped."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.keys import blind_index
from store.models import EventStatus, InboundEvent
from store.rows import insert_row
from store.types import utcnow
from store.upsert import insert_ignore

MAX_ATTEMPTS = 5
# The drains apply WhatsApp's events only. Another provider's failed row (a Telegram update
# the bot could not read or act on) is a record: set back to pending, a drain would take it
# for a WhatsApp event.
DRAINED_PROVIDER = "whatsapp"


def insert_events(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Inserts raw events; a (provider, provider_event_id) already stored is skipped.

    Each row: provider, provider_event_id, kind, contact_key (the customer's wa_id or user
    id: stored as its blind index), occurred_at, raw_body (stored sealed) and optionally
    status/error (a body we could not read is stored already failed).
    """
    if not rows:
        return
    now = utcnow()
    values = [
        {"status": EventStatus.PENDING, "error": None, "received_at": now, "attempts": 0, **row,
         "contact_key": row["contact_key"] and blind_index(row["contact_key"])}
        for row in rows
    ]
    session.execute(insert_ignore(session, InboundEvent), values)


def get_event(session: Session, *, event_id: int, for_update: bool = False) -> InboundEvent | None:
    query = select(InboundEvent).where(InboundEvent.id == event_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def lock_free_events(session: Session, *, limit: int) -> list[InboundEvent]:
    """Up to `limit` pending events that no job holds, oldest first, locked for this
    transaction (another worker skips them on PostgreSQL; SQLite's writer holds them all)."""
    query = (
        select(InboundEvent)
        .where(InboundEvent.status == EventStatus.PENDING, InboundEvent.dispatched_at.is_(None))
        .order_by(InboundEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def earlier_pending_events(session: Session, *, events: Sequence[InboundEvent]
                           ) -> list[InboundEvent]:
    """Pending messages of the customers of `events`, not among them, that WhatsApp
    timestamped no later than the latest of them (so that out-of-order deliveries can be
    applied in each customer's order), locked for this transaction."""
    messages = [e for e in events
                if e.kind == "message" and e.contact_key and e.occurred_at is not None]
    if not messages:
        return []
    query = (
        select(InboundEvent)
        .where(
            InboundEvent.kind == "message",
            InboundEvent.status == EventStatus.PENDING,
            InboundEvent.contact_key.in_({e.contact_key for e in messages}),
            InboundEvent.id.not_in([e.id for e in events]),
            InboundEvent.occurred_at <= max(e.occurred_at for e in messages),
        )
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def mark_processed(event: InboundEvent, *, now: datetime, note: str | None = None) -> None:
    event.status, event.processed_at, event.error = EventStatus.PROCESSED, now, note
    event.attempts += 1


def note_failure(event: InboundEvent, *, reason: str, final: bool = False) -> bool:
    """Counts a failed attempt of `event` (loaded and locked in this transaction); after
    MAX_ATTEMPTS (or when `final`) the event is FAILED. Returns True when it is now FAILED
    (listed by `opsbot events failed`)."""
    event.attempts += 1
    event.error = reason[:4000]
    if final or event.attempts >= MAX_ATTEMPTS:
        event.status = EventStatus.FAILED
    return event.status == EventStatus.FAILED


def list_failed_events(session: Session, *, limit: int = 500) -> list[InboundEvent]:
    """Failed events, newest first."""
    query = (
        select(InboundEvent)
        .where(InboundEvent.status == EventStatus.FAILED)
        .order_by(InboundEvent.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def retry_events(session: Session, *, event_ids: Sequence[int] | None = None) -> list[int]:
    """Puts failed WhatsApp events (these ids, or all of them) back to pending for dispatch;
    returns the ids that were reset. Other providers' events stay failed (see
    `list_unretryable_events`)."""
    query = select(InboundEvent.id).where(InboundEvent.status == EventStatus.FAILED,
                                          InboundEvent.provider == DRAINED_PROVIDER)
    if event_ids is not None:
        query = query.where(InboundEvent.id.in_(list(event_ids)))
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(InboundEvent)
            .where(InboundEvent.id.in_(ids))
            .values(status=EventStatus.PENDING, attempts=0, dispatched_at=None, claimed_by=None)
        )
    return ids


def list_unretryable_events(session: Session, *, event_ids: Sequence[int] | None = None
                            ) -> list[InboundEvent]:
    """Failed events (among these ids, or all) that `retry_events` leaves failed because no
    drain processes their provider, oldest first."""
    query = select(InboundEvent).where(InboundEvent.status == EventStatus.FAILED,
                                       InboundEvent.provider != DRAINED_PROVIDER)
    if event_ids is not None:
        query = query.where(InboundEvent.id.in_(list(event_ids)))
    return list(session.scalars(query.order_by(InboundEvent.id)))


def record_command_delivery(
    session: Session, *, channel: str, user_id: str, key: str, text: str, now: datetime
) -> bool:
    """Stores one delivery of an agent command (already processed) under its provider key.

    Returns False, storing nothing, when (`channel`, `key`) was stored before: a provider
    retry. One INSERT that skips a stored key (no look-up first, no unit-of-work flush); a
    concurrent delivery of the same key waits for the first one's transaction, and is a
    retry once that commits.
    """
    return insert_row(session, InboundEvent, {
        "provider": channel, "provider_event_id": key, "kind": "command",
        "contact_key": f"{channel}:{user_id}", "occurred_at": now, "raw_body": text.encode(),
        "received_at": now, "status": EventStatus.PROCESSED, "dispatched_at": now,
        "processed_at": now}, skip_conflict=True) is not None

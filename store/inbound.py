"""Raw inbound webhook events: stored before the 200, processed later, never dropped."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from store.models import EventStatus, InboundEvent
from store.types import utcnow
from store.upsert import insert_ignore

MAX_ATTEMPTS = 5


def insert_events(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Inserts raw events; a (provider, provider_event_id) already stored is skipped.

    Each row: provider, provider_event_id, kind, contact_key, occurred_at, raw_body and
    optionally status/error (a body we could not read is stored already failed).
    """
    if not rows:
        return
    now = utcnow()
    values = [
        {"status": EventStatus.PENDING, "error": None, "received_at": now, "attempts": 0, **row}
        for row in rows
    ]
    session.execute(insert_ignore(session, InboundEvent), values)


def get_event(session: Session, *, event_id: int, for_update: bool = False) -> InboundEvent | None:
    query = select(InboundEvent).where(InboundEvent.id == event_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def earlier_pending_event_ids(session: Session, *, event: InboundEvent) -> list[int]:
    """Pending message events of the same customer that WhatsApp timestamped before `event`,
    oldest first (so that out-of-order deliveries are applied in the customer's order)."""
    if event.contact_key is None or event.occurred_at is None:
        return []
    query = (
        select(InboundEvent.id)
        .where(
            InboundEvent.provider == event.provider,
            InboundEvent.contact_key == event.contact_key,
            InboundEvent.kind == event.kind,
            InboundEvent.status == EventStatus.PENDING,
            InboundEvent.id != event.id,
            or_(
                InboundEvent.occurred_at < event.occurred_at,
                (InboundEvent.occurred_at == event.occurred_at) & (InboundEvent.id < event.id),
            ),
        )
        .order_by(InboundEvent.occurred_at, InboundEvent.id)
    )
    return list(session.scalars(query))


def mark_processed(event: InboundEvent, *, now: datetime, note: str | None = None) -> None:
    event.status, event.processed_at, event.error = EventStatus.PROCESSED, now, note
    event.attempts += 1


def record_failure(session: Session, *, event_id: int, reason: str, final: bool = False) -> bool:
    """Counts a failed attempt; after MAX_ATTEMPTS (or when `final`) the event is FAILED.

    Returns True when the event is now FAILED (listed by `opsbot events failed`).
    """
    event = get_event(session, event_id=event_id, for_update=True)
    if event is None or event.status != EventStatus.PENDING:
        return False
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
    """Puts failed events (these ids, or all of them) back to pending for dispatch; returns
    the ids that were reset."""
    query = select(InboundEvent.id).where(InboundEvent.status == EventStatus.FAILED)
    if event_ids is not None:
        query = query.where(InboundEvent.id.in_(list(event_ids)))
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(InboundEvent)
            .where(InboundEvent.id.in_(ids))
            .values(status=EventStatus.PENDING, attempts=0, dispatched_at=None)
        )
    return ids

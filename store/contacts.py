"""Customers as WhatsApp identifies them: a phone-number wa_id and/or a BSUID (user_id)."""

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from store.models import Contact
from store.upsert import insert_ignore


def upsert_contact(
    session: Session,
    *,
    wa_id: str | None,
    user_id: str | None,
    name: str | None = None,
    now: datetime,
) -> Contact:
    """The customer with this wa_id or user_id, created when new, locked until commit.

    Missing identifiers and a changed profile name are filled in. Raises ValueError when both
    ids are missing. Concurrent callers for the same customer wait for each other.
    """
    if not wa_id and not user_id:
        raise ValueError("a contact needs a wa_id or a user_id")
    contact = _find(session, wa_id=wa_id, user_id=user_id)
    if contact is None:
        values = {"wa_id": wa_id, "user_id": user_id, "phone": wa_id, "name": name,
                  "crm_status": "lead", "tags": [], "first_seen_at": now, "last_seen_at": now}
        session.execute(insert_ignore(session, Contact).values(**values))
        contact = _find(session, wa_id=wa_id, user_id=user_id)
    if wa_id and not contact.wa_id:
        contact.wa_id, contact.phone = wa_id, contact.phone or wa_id
    if user_id and not contact.user_id:
        contact.user_id = user_id
    if name and contact.name != name:
        contact.name = name
    return contact


def _find(session: Session, *, wa_id: str | None, user_id: str | None) -> Contact | None:
    keys = [Contact.wa_id == wa_id] if wa_id else []
    keys += [Contact.user_id == user_id] if user_id else []
    query = select(Contact).where(or_(*keys)).order_by(Contact.id).limit(1).with_for_update()
    return session.scalars(query).first()


def note_inbound(contact: Contact, *, at: datetime) -> None:
    """Moves the customer-service window (24 h from the last inbound message) forward."""
    if contact.last_inbound_at is None or at > contact.last_inbound_at:
        contact.last_inbound_at = at
    if contact.last_seen_at is None or at > contact.last_seen_at:
        contact.last_seen_at = at

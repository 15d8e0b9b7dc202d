"""Customers as WhatsApp identifies them: a phone-number wa_id and/or a BSUID (user_id)."""

from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Select, bindparam, or_, select
from sqlalchemy.orm import Session

from store.models import Contact
from store.rows import insert_row

# WhatsApp's customer-service window: free text is allowed until 24 h after the customer's
# last message; after it only an approved template goes out.
REPLY_WINDOW = timedelta(hours=24)


def reply_window_closes(contact: Contact | None) -> datetime | None:
    """When the customer-service window with `contact` closes (None: they never wrote)."""
    if contact is None or contact.last_inbound_at is None:
        return None
    return contact.last_inbound_at + REPLY_WINDOW


def upsert_contact(
    session: Session,
    *,
    wa_id: str | None,
    user_id: str | None,
    name: str | None = None,
    now: datetime,
) -> tuple[Contact, bool]:
    """The customer with this wa_id or user_id, locked until commit, and whether this call
    created it (then it has no tasks and no messages yet).

    Missing identifiers and a changed profile name are filled in. Raises ValueError when both
    ids are missing. Concurrent callers for the same customer wait for each other.
    """
    if not wa_id and not user_id:
        raise ValueError("a contact needs a wa_id or a user_id")
    contact = _find(session, wa_id=wa_id, user_id=user_id)
    if contact is None:
        created = insert_row(session, Contact, {
            "wa_id": wa_id, "user_id": user_id, "phone": wa_id, "name": name,
            "crm_status": "lead", "tags": [], "first_seen_at": now, "last_seen_at": now,
        }, skip_conflict=True)
        if created is not None:
            return created, True
        contact = _find(session, wa_id=wa_id, user_id=user_id)  # another caller was first
    if wa_id and not contact.wa_id:
        contact.wa_id, contact.phone = wa_id, contact.phone or wa_id
    if user_id and not contact.user_id:
        contact.user_id = user_id
    if name and contact.name != name:
        contact.name = name
    return contact, False


def _find(session: Session, *, wa_id: str | None, user_id: str | None) -> Contact | None:
    keys = {"wa_id": wa_id} if wa_id else {}
    keys |= {"user_id": user_id} if user_id else {}
    return session.scalars(_find_query(*sorted(keys)), keys).first()


@cache
def _find_query(*keys: str) -> Select:
    columns = Contact.__table__.c
    query = select(Contact).where(or_(*(columns[key] == bindparam(key) for key in keys)))
    return query.order_by(Contact.id).limit(1).with_for_update()


def change_number(session: Session, *, contact: Contact, wa_id: str | None,
                  user_id: str | None) -> Contact | None:
    """Gives `contact` the new number (and BSUID) the customer moved to. Returns the other
    contact that already holds that number or BSUID (then nothing changes), else None."""
    keys = {"wa_id": wa_id} if wa_id else {}
    keys |= {"user_id": user_id} if user_id else {}
    if not keys:
        return None
    holder = _find(session, wa_id=wa_id, user_id=user_id)
    if holder is not None and holder.id != contact.id:
        return holder
    for key, value in keys.items():
        setattr(contact, key, value)
    if wa_id:
        contact.phone = wa_id
    return None


def note_inbound(contact: Contact, *, at: datetime, phone_id: str | None = None) -> None:
    """Moves the customer-service window (24 h from the last inbound message) forward; the
    latest message's business number (`phone_id`) is the one replies go out from."""
    if contact.last_inbound_at is None or at > contact.last_inbound_at:
        contact.last_inbound_at = at
        contact.business_phone_id = phone_id or contact.business_phone_id
    if contact.last_seen_at is None or at > contact.last_seen_at:
        contact.last_seen_at = at

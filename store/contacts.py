"""Customers as WhatsApp identifies them: a phone-number wa_id and/or a BSUID (user_id)."""

from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Select, bindparam, insert, or_, select
from sqlalchemy.orm import Session

from store.crypto import load_keys, new_data_key, personal
from store.keys import blind_index
from store.models import Contact, DataKey
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
    created it (then it has no tasks and no messages yet). A new customer gets their own data
    key: everything stored about them is sealed with it (store.crypto).

    Missing identifiers and a changed profile name are filled in. Raises ValueError when both
    ids are missing. Concurrent callers for the same customer wait for each other.
    """
    if not wa_id and not user_id:
        raise ValueError("a contact needs a wa_id or a user_id")
    contact = _find(session, wa_id=wa_id, user_id=user_id)
    if contact is None:
        key_id, wrapped = new_data_key()
        created = insert_row(session, Contact, {
            "data_key_id": key_id, **_identity(key_id, wa_id=wa_id, user_id=user_id),
            "phone": personal(wa_id, key_id), "name": personal(name, key_id),
            "crm_status": "lead", "tags": [], "first_seen_at": now, "last_seen_at": now,
        }, skip_conflict=True)
        if created is not None:
            session.connection().execute(insert(DataKey.__table__),  # no ORM flush for it
                                         {"id": key_id, "wrapped": wrapped, "created_at": now})
            return created, True
        contact = _find(session, wa_id=wa_id, user_id=user_id)  # another caller was first
    if wa_id and not contact.wa_id:
        _set_identity(contact, wa_id=wa_id)
    if user_id and not contact.user_id:
        _set_identity(contact, user_id=user_id)
    if name and contact.name != name:
        contact.name = personal(name, contact.data_key_id)
    return contact, False


def _identity(key_id: str | None, *, wa_id: str | None = None,
              user_id: str | None = None) -> dict[str, str | None]:
    """The columns of a contact's number and BSUID: each sealed, and its blind index."""
    values: dict[str, str | None] = {}
    if wa_id is not None:
        values |= {"wa_id": personal(wa_id, key_id), "wa_id_index": wa_id and blind_index(wa_id)}
    if user_id is not None:
        values |= {"user_id": personal(user_id, key_id),
                   "user_id_index": user_id and blind_index(user_id)}
    return values


def _set_identity(contact: Contact, *, wa_id: str | None = None,
                  user_id: str | None = None) -> None:
    for column, value in _identity(contact.data_key_id, wa_id=wa_id, user_id=user_id).items():
        setattr(contact, column, value)
    if wa_id:
        contact.phone = personal(wa_id, contact.data_key_id)


def data_key_of(session: Session, *, contact_id: int | None) -> str | None:
    """The data key that seals what belongs to contact `contact_id` (None: the shared key).
    The contact is usually in the session already: no query then."""
    contact = session.get(Contact, contact_id) if contact_id is not None else None
    return contact.data_key_id if contact is not None else None


def page_contacts(session: Session, *, after: int, limit: int, external_id: tuple[str, str] | None,
                  crm_status: str | None, updated_after: datetime | None) -> list[Contact]:
    """Up to `limit` customers after id `after`, in id order, not erased; with the external
    id (system, id), the CRM status and changed after `updated_after` when given."""
    query = (select(Contact).where(Contact.id > after, Contact.erased_at.is_(None))
             .order_by(Contact.id).limit(limit))
    if external_id is not None:
        system, value = external_id
        query = query.where(Contact.external_ids[system].as_string() == value)
    if crm_status is not None:
        query = query.where(Contact.crm_status == crm_status)
    if updated_after is not None:
        query = query.where(Contact.updated_at > updated_after)
    found = session.execute(query.with_only_columns(Contact.id, Contact.data_key_id)).all()
    load_keys(row.data_key_id for row in found)  # one look-up for the page's customers
    contacts = select(Contact).where(Contact.id.in_([row.id for row in found])).order_by(Contact.id)
    return list(session.scalars(contacts))


def find_contact(session: Session, *, wa_id: str) -> Contact | None:
    """The customer whose WhatsApp number (or BSUID) is `wa_id`, or None (an erased
    customer is no longer found)."""
    return _find(session, wa_id=wa_id, user_id=wa_id)


def _find(session: Session, *, wa_id: str | None, user_id: str | None) -> Contact | None:
    keys = {"wa_id_index": blind_index(wa_id)} if wa_id else {}
    keys |= {"user_id_index": blind_index(user_id)} if user_id else {}
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
    if not wa_id and not user_id:
        return None
    holder = _find(session, wa_id=wa_id, user_id=user_id)
    if holder is not None and holder.id != contact.id:
        return holder
    _set_identity(contact, wa_id=wa_id, user_id=user_id)
    return None


def note_inbound(contact: Contact, *, at: datetime, phone_id: str | None = None) -> None:
    """Moves the customer-service window (24 h from the last inbound message) forward; the
    latest message's business number (`phone_id`) is the one replies go out from."""
    if contact.last_inbound_at is None or at > contact.last_inbound_at:
        contact.last_inbound_at = at
        contact.business_phone_id = phone_id or contact.business_phone_id
    if contact.last_seen_at is None or at > contact.last_seen_at:
        contact.last_seen_at = at

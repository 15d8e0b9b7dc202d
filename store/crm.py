"""A contact's CRM fields as integrations set them (`PATCH /api/v1/contacts/{wa_id}`).

Not in store/contacts.py: the audit event it writes would make store.contacts import
store.events, which imports store.contacts (for data keys).
"""

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from store.crypto import personal
from store.events import record_event
from store.models import Contact

CONTACT_UPDATED = "contact_updated"  # no task: details: contact_id, fields
CRM_FIELDS = ("crm_status", "tags", "name", "language", "external_ids")


def update_contact(session: Session, *, contact: Contact, changes: dict[str, Any], actor: str,
                   now: datetime) -> list[str]:
    """Sets the CRM_FIELDS of `contact` given in `changes` (the name sealed with the
    customer's data key; an `external_ids` entry of None removes that system's id) and, when
    something changed, writes a `contact_updated` event to the system chain. Returns the names
    of the fields that changed. The next message's rules see the new status and tags."""
    changed = []
    for field, value in changes.items():
        if field not in CRM_FIELDS:
            raise ValueError(f"{field} is not a CRM field of a contact")
        if field == "external_ids":
            value = _merged(contact.external_ids or {}, value)
        if getattr(contact, field) != value:
            changed.append(field)
            setattr(contact, field, personal(value, contact.data_key_id)
                    if field == "name" else value)
    if changed:
        contact.updated_at = now
        record_event(session, task=None, actor=actor, action=CONTACT_UPDATED, at=now,
                     details={"contact_id": contact.id, "fields": changed})
    return changed


def _merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = {**current, **changes}
    return {system: value for system, value in sorted(merged.items()) if value is not None}

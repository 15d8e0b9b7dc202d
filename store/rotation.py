"""Key rotation, in small batches that each commit: what `opsbot keys rotate` does.

After a new master key is put first in OPSBOT_DATA_KEYS: every data key is re-wrapped by it
(the data sealed with the data keys stays as it is: envelope encryption), and the values
sealed with a key derived from an older master key, or stored before encryption, are sealed
again (with their customer's data key when the row names the customer). Contacts from before
encryption get their data key first. The audit trail's values are never re-sealed: their
hashes cover them as stored (store.audit); `pending_audit_values` counts those that still
need an older master key. Raw webhook bodies are not re-sealed either: they are kept for
`retention.raw_events` (keep an older master key listed that long after a rotation).
"""

from sqlalchemy import Table, Text, and_, not_, or_, select, type_coerce, update
from sqlalchemy.orm import Session

from store import crypto, keys
from store.models import Contact, DataKey, Message, OutboxMessage, Task, TaskEvent
from store.types import utcnow

# table -> (its sealed columns, the column naming its customer or None)
SEALED = {
    Contact.__table__: (("wa_id", "user_id", "phone", "name"), "id"),
    Task.__table__: (("title",), "contact_id"),
    Message.__table__: (("text", "payload"), "contact_id"),
    OutboxMessage.__table__: (("payload",), "contact_id"),
}


def key_legacy_contacts(session: Session, *, limit: int) -> int:
    """Gives up to `limit` contacts from before encryption (and not erased) a data key."""
    query = (select(Contact.id).where(Contact.data_key_id.is_(None), Contact.erased_at.is_(None))
             .limit(limit))
    ids = list(session.scalars(query))
    for contact_id in ids:
        key_id, wrapped = crypto.new_data_key()
        session.add(DataKey(id=key_id, wrapped=wrapped, created_at=utcnow()))
        session.execute(update(Contact).where(Contact.id == contact_id)
                        .values(data_key_id=key_id))
    return len(ids)


def rewrap_data_keys(session: Session, *, limit: int) -> int:
    """Re-wraps up to `limit` data keys that an older master key wraps."""
    primary = keys.current().primary
    query = (select(DataKey).where(DataKey.wrapped.is_not(None),
                                   not_(DataKey.wrapped.startswith(f"{primary}:")))
             .limit(limit).with_for_update())
    found = list(session.scalars(query))
    for data_key in found:
        data_key.wrapped = crypto.wrap(crypto.unwrap(data_key.wrapped))
    return len(found)


def reseal_values(session: Session, *, table: Table, limit: int) -> int:
    """Seals again up to `limit` rows of `table` whose values are in clear (stored before
    encryption) or sealed with a key derived from an older master key."""
    columns, owner = SEALED[table]
    raw = {name: type_coerce(table.c[name], Text) for name in columns}
    current = f"{crypto.PREFIX}{crypto.shared_key_id()}:"
    stale = or_(*(and_(value.is_not(None), or_(
        not_(value.startswith(crypto.PREFIX)),
        and_(value.startswith(f"{crypto.PREFIX}m."), not_(value.startswith(current))))
    ) for value in raw.values()))
    owners = Contact.__table__.c
    owner_key = (select(owners.data_key_id).where(owners.id == table.c[owner]).scalar_subquery()
                 if owner else None)
    query = select(table.c.id, *raw.values(), *([owner_key] if owner else []))
    rows = session.execute(query.where(stale).limit(limit)).all()
    for row in rows:
        key_id = row[-1] if owner else None
        changes = {}
        for index, name in enumerate(columns, start=1):
            stored = row[index]
            if stored is None or (stored.startswith(crypto.PREFIX)
                                  and not stored.startswith(f"{crypto.PREFIX}m.")):
                continue  # sealed with a data key already: its wrapping was rotated
            changes[name] = type_coerce(crypto.seal(_plain(stored), key_id), Text)
        if changes:
            session.execute(update(table).where(table.c.id == row[0]).values(**changes))
    return len(rows)


def pending_audit_values(session: Session) -> int:
    """Audit events whose details hold values sealed with an older master key's derived key
    (the audit is never re-sealed: keep that master key listed while they exist)."""
    current = f"{crypto.PREFIX}{crypto.shared_key_id()}:"
    details = type_coerce(TaskEvent.details, Text)
    query = select(TaskEvent.id).where(details.contains(f"{crypto.PREFIX}m."),
                                       not_(details.contains(current)))
    return len(session.scalars(query.limit(10_000)).all())


def _plain(text: str) -> bytes:
    if not text.startswith(crypto.PREFIX):
        return text.encode()
    plain, _ = crypto.open_sealed(text)
    return plain or b""

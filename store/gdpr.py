"""A person's rights over their data (GDPR): everything opsbot holds about them, and its
erasure for good.

Erasure destroys the contact's data key, so that what was sealed with it (their number, name,
messages, task titles, the customer text in the audit trail) can never be read again, backups
included; it also empties what was sealed with the shared key (raw webhook bodies, delivery
payloads) and removes the blind indexes, so that a later message from the same number starts
a new contact. Tasks keep their anonymous figures (times, statuses, team, agent, rating) for
the KPIs, and the audit trail stays verifiable: its rows are not touched.
"""

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store import crypto
from store.contacts import find_contact
from store.errors import NotFound
from store.events import record_event
from store.models import (
    Contact,
    DataKey,
    InboundEvent,
    Message,
    OutboxMessage,
    RuleDecision,
    Survey,
    Task,
    TaskEvent,
)
from store.serialize import event_as_dict, task_as_dict

ERASED_ACTION = "erased"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def export_contact(session: Session, *, wa_id: str) -> dict[str, Any]:
    """Everything stored about the customer with this number or BSUID (NotFound if none)."""
    contact = _contact(session, wa_id)
    tasks = list(session.scalars(select(Task).where(Task.contact_id == contact.id)
                                 .order_by(Task.id)))
    task_ids = [task.id for task in tasks]
    messages = session.scalars(select(Message).where(Message.contact_id == contact.id)
                               .order_by(Message.id))
    events = session.scalars(select(TaskEvent).where(TaskEvent.task_id.in_(task_ids))
                             .order_by(TaskEvent.id)) if task_ids else []
    return {
        "contact": {
            "wa_id": contact.wa_id, "user_id": contact.user_id, "phone": contact.phone,
            "name": contact.name, "language": contact.language,
            "crm_status": contact.crm_status, "tags": list(contact.tags or ()),
            "first_seen_at": _iso(contact.first_seen_at),
            "last_seen_at": _iso(contact.last_seen_at),
            "last_inbound_at": _iso(contact.last_inbound_at),
        },
        "messages": [_message(message) for message in messages],
        "tasks": [task_as_dict(task) | {"rating": task.rating} for task in tasks],
        "ratings": [{"task": task.ref, "rating": task.rating} for task in tasks
                    if task.rating is not None],
        "surveys": [_survey(survey) for survey in session.scalars(
            select(Survey).where(Survey.contact_id == contact.id).order_by(Survey.id))],
        "media_ids": [m.media_id for m in session.scalars(
            select(Message).where(Message.contact_id == contact.id,
                                  Message.media_id.is_not(None)))],
        "audit_events": [{"task": f"T-{event.task_id}", **event_as_dict(event)}
                         for event in events],
    }


def _survey(survey: Survey) -> dict[str, Any]:
    return {"task": f"T-{survey.task_id}", "status": survey.status,
            "sent_at": _iso(survey.sent_at), "score": survey.score,
            "answered_at": _iso(survey.answered_at), "comment": survey.comment}


def _message(message: Message) -> dict[str, Any]:
    return {"direction": message.direction, "type": message.type, "text": message.text,
            "media_id": message.media_id, "payload": dict(message.payload or {}),
            "task": f"T-{message.task_id}" if message.task_id else None,
            "status": message.status, "at": _iso(message.sent_at or message.created_at)}


@dataclass(frozen=True)
class Erasure:
    """What an erasure did: the contact, and how many of their rows it emptied."""

    contact_id: int
    tasks: int
    messages: int
    raw_events: int
    deliveries: int
    data_key_destroyed: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def erase_contact(session: Session, *, wa_id: str, actor: str, reason: str,
                  now: datetime) -> Erasure:
    """Makes the customer with this number or BSUID unreadable for good and records who did
    it, when and why (an `erased` audit event). NotFound when no such customer (or erased)."""
    if not reason.strip():
        raise ValueError("an erasure needs its reason")
    contact = _contact(session, wa_id)
    blind = [index for index in (contact.wa_id_index, contact.user_id_index) if index]
    task_ids = list(session.scalars(select(Task.id).where(Task.contact_id == contact.id)))
    destroyed = False
    if contact.data_key_id is not None:
        found = session.execute(
            update(DataKey).where(DataKey.id == contact.data_key_id, DataKey.wrapped.is_not(None))
            .values(wrapped=None, destroyed_at=now))
        destroyed = found.rowcount > 0
    messages = session.execute(
        update(Message).where(Message.contact_id == contact.id)
        .values(text=None, media_id=None, payload={})).rowcount
    owned = OutboxMessage.contact_id == contact.id
    if task_ids:
        owned = owned | OutboxMessage.task_id.in_(task_ids)
    deliveries = session.execute(update(OutboxMessage).where(owned).values(payload={})).rowcount
    raw_events = 0
    if blind:
        raw_events = session.execute(
            update(InboundEvent).where(InboundEvent.contact_key.in_(blind))
            .values(raw_body=b"", contact_key=None)).rowcount
    # Their recorded rules decisions keep what is not about them; the tags go with the rest.
    session.execute(update(RuleDecision).where(RuleDecision.contact_id == contact.id)
                    .values(contact_tags=None))
    session.execute(update(Contact).where(Contact.id == contact.id).values(
        wa_id=None, user_id=None, phone=None, name=None, wa_id_index=None, user_id_index=None,
        tags=[], erased_at=now))
    session.expire(contact)
    erasure = Erasure(contact_id=contact.id, tasks=len(task_ids), messages=messages,
                      raw_events=raw_events, deliveries=deliveries, data_key_destroyed=destroyed)
    record_event(session, task=None, actor=actor, action=ERASED_ACTION,
                 details={**erasure.as_dict(), "reason": reason.strip()}, at=now)
    if contact.data_key_id is not None:
        crypto.forget_data_key(contact.data_key_id)
    return erasure


def _contact(session: Session, wa_id: str) -> Contact:
    contact = find_contact(session, wa_id=wa_id)
    if contact is None:
        raise NotFound(f"no customer with the number or WhatsApp id {wa_id}")
    return contact

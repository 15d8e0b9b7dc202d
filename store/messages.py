"""WhatsApp messages in both directions, keyed by the provider's message id (wamid)."""

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.contacts import data_key_of
from store.crypto import personal
from store.models import Direction, Message
from store.rows import insert_row

# A later status never moves a message back (a late "delivered" after "read" is ignored).
_STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3, "played": 3, "failed": 4}


def record_inbound_message(
    session: Session,
    *,
    provider_message_id: str,
    contact_id: int,
    type: str,
    text: str | None,
    media_id: str | None,
    payload: dict[str, Any],
    at: datetime,
    task_id: int | None = None,
) -> Message | None:
    """Stores a customer's message (in `task_id` when given); returns None when this wamid
    was stored before (one INSERT that the unique wamid lets through, also against a
    concurrent worker). The text and the payload are sealed with the customer's data key."""
    key_id = data_key_of(session, contact_id=contact_id)
    message = insert_row(session, Message, {
        "provider_message_id": provider_message_id, "direction": Direction.INBOUND,
        "contact_id": contact_id, "task_id": task_id, "type": type,
        "text": personal(text, key_id), "media_id": media_id,
        "payload": personal(payload, key_id), "status": "received", "sent_at": at,
        "created_at": at,
    }, skip_conflict=True)
    return message


def change_message(session: Session, *, message: Message, text: str | None,
                   payload: dict[str, Any]) -> None:
    """Replaces a stored message's text and payload (the customer edited or deleted it),
    sealed with its customer's data key."""
    key_id = data_key_of(session, contact_id=message.contact_id)
    message.text, message.payload = personal(text, key_id), personal(payload, key_id)


def get_message(session: Session, *, provider_message_id: str) -> Message | None:
    query = select(Message).where(Message.provider_message_id == provider_message_id)
    return session.scalars(query).first()


def find_inbound_message(session: Session, *, message_id: int) -> Message | None:
    """The customer's message `message_id`, or None (none such, or one we sent)."""
    message = session.get(Message, message_id)
    return message if message is not None and message.direction == Direction.INBOUND else None


def list_task_messages(session: Session, *, task_id: int, limit: int) -> list[Message]:
    """The last `limit` messages of a task, both directions, oldest first."""
    query = (select(Message).where(Message.task_id == task_id)
             .order_by(Message.id.desc()).limit(limit))
    return list(reversed(list(session.scalars(query))))


def find_last_inbound(session: Session, *, task_id: int) -> Message | None:
    """The customer's latest message in a task, or None."""
    query = (select(Message).where(Message.task_id == task_id,
                                   Message.direction == Direction.INBOUND)
             .order_by(Message.id.desc()).limit(1))
    return session.scalars(query).first()


def apply_status(
    session: Session, *, provider_message_id: str, status: str, error: str | None = None
) -> Message | None:
    """Updates an outbound message's delivery status; returns it, or None when unknown.

    A failure is always recorded; other statuses only move forward.
    """
    message = get_message(session, provider_message_id=provider_message_id)
    if message is None or message.direction != Direction.OUTBOUND:
        return None
    current = _STATUS_RANK.get(message.status or "", 0)
    if status == "failed" or _STATUS_RANK.get(status, 0) > current:
        message.status = status
    if error:
        message.error = error
    return message

"""The notification outbox: what must reach an agent or a customer, delivered by workers."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Contact, Direction, Message, OutboxMessage, OutboxStatus, Task


def add_outbox_message(
    session: Session,
    *,
    dedupe_key: str,
    channel: str,
    kind: str,
    payload: dict[str, Any],
    task_id: int | None = None,
    agent_id: str | None = None,
    contact_id: int | None = None,
) -> OutboxMessage | None:
    """Queues a delivery once per `dedupe_key`; returns None when it was already queued.

    The key makes re-runs of a job (a reminder, a processed message) harmless.
    """
    exists = select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)
    if session.scalar(exists) is not None:
        return None
    message = OutboxMessage(
        dedupe_key=dedupe_key,
        channel=channel,
        kind=kind,
        payload=payload,
        task_id=task_id,
        agent_id=agent_id,
        contact_id=contact_id,
        status=OutboxStatus.PENDING,
    )
    session.add(message)
    session.flush()
    return message


def queue_customer_message(
    session: Session,
    *,
    contact: Contact,
    kind: str,
    text: str,
    dedupe_key: str,
    task: Task | None = None,
) -> OutboxMessage | None:
    """Queues a WhatsApp message to the customer (ack, reply, closing) and its outbound row.

    Returns None when `dedupe_key` was already queued. The payload is
    {"to": wa_id, "text": text, "language": contact language, "message_id": outbound row id}.
    """
    message = Message(
        direction=Direction.OUTBOUND,
        contact_id=contact.id,
        task_id=task.id if task is not None else None,
        type="text",
        text=text,
        status="queued",
    )
    outbox = add_outbox_message(
        session,
        dedupe_key=dedupe_key,
        channel="whatsapp",
        kind=kind,
        payload={"to": contact.wa_id, "text": text, "language": contact.language},
        task_id=message.task_id,
        contact_id=contact.id,
    )
    if outbox is None:
        return None
    session.add(message)
    session.flush()
    outbox.payload = {**outbox.payload, "message_id": message.id}
    return outbox

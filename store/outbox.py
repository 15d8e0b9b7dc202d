"""The notification outbox: what must reach an agent or a customer, delivered by workers."""

from collections.abc import Collection
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.orm import Session

from store.contacts import data_key_of
from store.crypto import personal
from store.models import Contact, Direction, Message, OutboxMessage, OutboxStatus, Task
from store.rows import insert_row

CUSTOMER_CHANNEL = "whatsapp"  # the outbox channel of messages to customers


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
    new_key: bool = False,
    not_before: datetime | None = None,
) -> OutboxMessage | None:
    """Queues a delivery once per `dedupe_key`, to be sent at `not_before` at the earliest
    (None: at once); returns None when it was already queued.

    The key makes re-runs of a job (a reminder, a processed message) harmless: the INSERT
    skips a key already stored (one statement, no look-up first). `new_key` says that no row
    can have the key (it names a task or a message created in this transaction, or the
    caller just looked): a plain INSERT (the unique key would still refuse a second row).
    """
    return insert_row(session, OutboxMessage, {
        "dedupe_key": dedupe_key, "channel": channel, "kind": kind,
        "payload": personal(payload, _data_key(session, contact_id, task_id)),
        "task_id": task_id, "agent_id": agent_id, "contact_id": contact_id,
        "status": OutboxStatus.PENDING, "next_attempt_at": not_before,
    }, skip_conflict=not new_key)


def _data_key(session: Session, contact_id: int | None, task_id: int | None) -> str | None:
    """The key that seals a delivery's payload: its customer's (cards carry what they
    wrote)."""
    if contact_id is None and task_id is not None:
        task = session.get(Task, task_id)
        contact_id = task.contact_id if task is not None else None
    return data_key_of(session, contact_id=contact_id)


def queue_customer_message(
    session: Session,
    *,
    contact: Contact,
    kind: str,
    text: str,
    dedupe_key: str,
    task: Task | None = None,
    new_key: bool = False,
) -> OutboxMessage | None:
    """Queues a WhatsApp message to the customer (ack, reply, closing) and its outbound row.

    Returns None when `dedupe_key` was already queued (`new_key`: see `add_outbox_message`).
    The payload is {"to": wa_id, "text": text, "language": contact language,
    "message_id": outbound row id}.
    """
    if not new_key and _queued(session, dedupe_key):
        return None
    message = insert_row(session, Message, {
        "direction": Direction.OUTBOUND, "contact_id": contact.id,
        "task_id": task.id if task is not None else None, "type": "text",
        "text": personal(text, contact.data_key_id), "status": "queued",
    })
    return add_outbox_message(
        session,
        dedupe_key=dedupe_key,
        channel=CUSTOMER_CHANNEL,
        kind=kind,
        payload={"to": contact.wa_id, "text": text, "language": contact.language,
                 "message_id": message.id},
        task_id=message.task_id,
        contact_id=contact.id,
        new_key=True,
    )


def queued_since(session: Session, *, key_prefix: str, since: datetime) -> bool:
    """Whether a row whose dedupe key starts with `key_prefix` was queued after `since`."""
    query = select(OutboxMessage.id).where(OutboxMessage.dedupe_key.startswith(key_prefix),
                                           OutboxMessage.created_at > since).limit(1)
    return session.scalar(query) is not None


def _queued(session: Session, dedupe_key: str) -> bool:
    return session.scalar(_queued_query(), {"dedupe_key": dedupe_key}) is not None


# Built once, as the card query below: each card update and reply of an agent's command runs
# them, and building one cost about as much as running it.
@cache
def _queued_query() -> Select:
    return select(OutboxMessage.id).where(OutboxMessage.dedupe_key == bindparam("dedupe_key"))


def list_delivered_cards(
    session: Session, *, task_id: int, channels: Collection[str], exclude_kinds: Collection[str]
) -> list[OutboxMessage]:
    """The messages about `task_id` sent on `channels` that the channel gave an id to (so they
    can be edited), oldest first, leaving out those of `exclude_kinds` (edits of cards)."""
    values = {"task_id": task_id, "channels": list(channels), "exclude_kinds": list(exclude_kinds)}
    return list(session.scalars(_delivered_cards_query(), values))


@cache
def _delivered_cards_query() -> Select:
    return select(OutboxMessage).where(
        OutboxMessage.task_id == bindparam("task_id"),
        OutboxMessage.channel.in_(bindparam("channels", expanding=True)),
        OutboxMessage.status == OutboxStatus.SENT,
        OutboxMessage.kind.not_in(bindparam("exclude_kinds", expanding=True)),
        OutboxMessage.provider_message_id.is_not(None),
    ).order_by(OutboxMessage.id)


def list_posted(session: Session, *, ids: Collection[int]) -> list[tuple[int, str, str, str]]:
    """(id, channel, provider chat id, provider message id) of the rows among `ids` that the
    channel gave ids to: where those messages can be edited. One query, no payload read."""
    if not ids:
        return []
    columns = (OutboxMessage.id, OutboxMessage.channel, OutboxMessage.provider_chat_id,
               OutboxMessage.provider_message_id)
    query = select(*columns).where(OutboxMessage.id.in_(list(ids)),
                                   OutboxMessage.provider_chat_id.is_not(None),
                                   OutboxMessage.provider_message_id.is_not(None))
    return [tuple(row) for row in session.execute(query)]


def mark_outbox_sent(session: Session, *, rows: list[dict[str, Any]]) -> None:
    """Records sent rows: each dict holds the row's `id` and its new column values (status,
    sent_at, attempts, provider ids…), written by primary key in one executemany."""
    if rows:
        session.execute(update(OutboxMessage), rows)


def count_pending_outbox(session: Session) -> int:
    """How many outbox rows wait for delivery."""
    query = select(func.count(OutboxMessage.id)).where(OutboxMessage.status == OutboxStatus.PENDING)
    return session.scalar(query) or 0

"""Customer message items that are not requests: an edit or a deletion of an earlier
message, a number or identity change, an answer to a call permission request, an error that
WhatsApp sent in place of a message. Each is kept (a message row, for the audit and to
recognise a redelivery) and changes what it is about; none opens a task or answers the
customer. Called inside the caller's transaction.
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from bot.usecases.assignment import notify_agent
from bot.whatsapp.parsing import Inbound, InboundMessage
from notifiers.texts import shorten
from rules import RulesConfig
from store.contacts import change_number, upsert_contact
from store.events import Audit, record_event
from store.lifecycle import customer_actor
from store.messages import change_message, get_message, record_inbound_message
from store.models import Contact, Task
from store.tasks import find_customer_tasks


class ChangeOutcome(StrEnum):
    """What a message item that is not a request did."""

    EDITED = "edited"  # the earlier message has the new text
    DELETED = "deleted"  # the earlier message is marked deleted
    NUMBER_CHANGED = "number changed"  # the contact now has the new number
    NOTED = "noted"  # kept, and on the open task's audit trail
    NOT_FOUND = "earlier message not found"  # an edit or deletion of a message we never had
    DUPLICATE = "duplicate change"


def apply_change(session: Session, *, config: RulesConfig, message: InboundMessage,
                 now: datetime) -> ChangeOutcome:
    """Applies a message item whose kind is not `Inbound.REQUEST`."""
    contact, _ = upsert_contact(session, wa_id=message.wa_id, user_id=message.user_id,
                                name=message.name, now=message.at)
    open_task = find_customer_tasks(session, contact_id=contact.id).open
    stored = record_inbound_message(
        session, provider_message_id=message.wamid, contact_id=contact.id, type=message.type,
        text=message.text, media_id=message.media_id, at=message.at,
        payload={**message.details, "kind": str(message.kind), "refers_to": message.refers_to,
                 "parsed_by": message.parsed_by},
        task_id=open_task.id if open_task is not None else None)
    if stored is None:
        return ChangeOutcome.DUPLICATE
    if message.kind in (Inbound.EDIT, Inbound.REVOKE):
        return _change_message(session, config, message, contact, now)
    if message.kind == Inbound.NUMBER_CHANGE:
        return _change_number(session, message, contact, open_task, now)
    if message.kind == Inbound.IDENTITY_CHANGE:  # shown on the customer's task cards
        contact.identity_changed_at = message.at
    if open_task is not None:
        _audit(session, open_task, contact, Audit.MESSAGE, now, message_id=stored.id,
               type=stored.type, text=shorten(message.text, 1000), kind=str(message.kind))
    return ChangeOutcome.NOTED


def _change_message(session: Session, config: RulesConfig, message: InboundMessage,
                    contact: Contact, now: datetime) -> ChangeOutcome:
    original = get_message(session, provider_message_id=message.refers_to or "")
    if original is None or original.contact_id != contact.id:
        return ChangeOutcome.NOT_FOUND
    task = session.get(Task, original.task_id) if original.task_id is not None else None
    if message.kind == Inbound.REVOKE:
        change_message(session, message=original, text=original.text,
                       payload={**original.payload, "deleted_at": message.at.isoformat()})
        if task is not None:
            _audit(session, task, contact, Audit.MESSAGE_DELETED, now, message_id=original.id)
        return ChangeOutcome.DELETED
    previous = original.text
    edits = [*original.payload.get("edits", []), {"text": previous, "at": message.at.isoformat()}]
    change_message(session, message=original, text=message.text,
                   payload={**original.payload, "edits": edits})
    if task is not None:
        _audit(session, task, contact, Audit.MESSAGE_EDITED, now, message_id=original.id,
               text=shorten(message.text, 1000), previous=shorten(previous or "", 1000))
        if task.is_open and task.assignee_id:
            notify_agent(session, config=config, kind="follow_up", task=task,
                         agent_id=task.assignee_id, dedupe_key=f"edit:{message.wamid}",
                         details={"text": f"✏️ Edited: {message.text}"})
    return ChangeOutcome.EDITED


def _change_number(session: Session, message: InboundMessage, contact: Contact,
                   open_task: Task | None, now: datetime) -> ChangeOutcome:
    new_wa_id, new_user_id = message.details.get("new_wa_id"), message.details.get("new_user_id")
    holder = change_number(session, contact=contact, wa_id=new_wa_id, user_id=new_user_id)
    if open_task is not None:
        _audit(session, open_task, contact, Audit.CONTACT_CHANGED, now, old_wa_id=message.wa_id,
               new_wa_id=new_wa_id, text=message.text,
               conflict=f"the new number is contact {holder.id}'s" if holder else None)
    return ChangeOutcome.NUMBER_CHANGED if holder is None else ChangeOutcome.NOTED


def _audit(session: Session, task: Task, contact: Contact, action: str, now: datetime,
           **details) -> None:
    customer = customer_actor(contact.id)
    kept = {key: value for key, value in details.items() if value is not None}
    record_event(session, task=task, actor=customer.label, action=action, details=kept, at=now)

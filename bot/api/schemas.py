"""The shapes the API answers with, so that its OpenAPI schema says exactly what comes back."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from store.models import Contact, Direction, Message, Task, TaskEvent, TaskStatus
from store.serialize import task_as_dict


class ContactRef(BaseModel):
    wa_id: str | None
    name: str | None


class TaskOut(BaseModel):
    """A task; times are ISO 8601 UTC."""

    id: int
    ref: str
    title: str
    status: TaskStatus
    category: str
    priority: str
    tags: list[str]
    stage: str | None
    team: str | None
    assignee: str | None
    rule: str | None
    contact: ContactRef | None
    first_response_due: datetime | None
    resolution_due: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    accepted_at: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None


class EventOut(BaseModel):
    """An audit event: who did what, from which status to which, when."""

    model_config = ConfigDict(populate_by_name=True)

    id: int
    task: str | None = Field(description="The task's ref; null for the system chain.")
    at: datetime
    actor: str
    action: str
    from_status: str | None = Field(alias="from")
    to_status: str | None = Field(alias="to")
    details: dict[str, Any]


class MessageOut(BaseModel):
    """A WhatsApp message of a task, from the customer or to them."""

    id: int
    at: datetime | None
    direction: Literal["inbound", "outbound"]
    type: str
    text: str | None
    via: str | None
    status: str | None


class TaskDetail(TaskOut):
    """A task with its conversation and its audit trail."""

    messages: list[MessageOut]
    events: list[EventOut]


class ContactOut(BaseModel):
    """A customer as the CRM sees them."""

    id: int
    wa_id: str | None
    user_id: str | None
    name: str | None
    language: str | None
    crm_status: str
    tags: list[str]
    external_ids: dict[str, str]
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    updated_at: datetime | None


def task_out(task: Task) -> TaskOut:
    row = task_as_dict(task)
    return TaskOut(**{key: value for key, value in row.items() if key != "number"},
                   id=task.id, updated_at=task.updated_at)


def event_out(event: TaskEvent) -> EventOut:
    return EventOut(id=event.id, task=f"T-{event.task_id}" if event.task_id else None,
                    at=event.at, actor=event.actor, action=event.action,
                    from_status=event.from_status, to_status=event.to_status,
                    details=event.details or {})


def message_out(message: Message) -> MessageOut:
    return MessageOut(id=message.id, at=message.sent_at or message.created_at,
                      direction="inbound" if message.direction == Direction.INBOUND
                      else "outbound", type=message.type, text=message.text, via=message.via,
                      status=message.status)


def contact_out(contact: Contact) -> ContactOut:
    return ContactOut(id=contact.id, wa_id=contact.wa_id, user_id=contact.user_id,
                      name=contact.name, language=contact.language,
                      crm_status=contact.crm_status or "lead", tags=list(contact.tags or ()),
                      external_ids={str(k): str(v) for k, v in
                                    (contact.external_ids or {}).items()},
                      first_seen_at=contact.first_seen_at, last_seen_at=contact.last_seen_at,
                      updated_at=contact.updated_at)

"""What the caller knows about one incoming message: the inputs of `evaluate`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rules.enums import MessageType


@dataclass(frozen=True)
class MessageFacts:
    """The message itself. `referral` is the ad id or headline of a click-to-WhatsApp ad;
    `button_payload` is a template quick-reply payload or an interactive reply id; a
    completed WhatsApp Flow has a `flow_name` (its token up to the first ":") and the
    answers of its form (`flow_fields`)."""

    text: str
    type: MessageType = MessageType.text
    language: str | None = None
    referral: str | None = None
    button_payload: str | None = None
    flow_name: str | None = None
    flow_fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ContactFacts:
    """The customer as the CRM knows them; `status` is a free string (lead, customer, vip…)."""

    name: str | None = None
    status: str = "lead"
    language: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class HistoryFacts:
    """The customer's past; a first contact has task_count 0 and no last contact."""

    task_count: int = 0
    open_task: bool = False
    last_category: str | None = None
    days_since_last_contact: float | None = None

    @property
    def first_contact(self) -> bool:
        return self.task_count == 0 and self.days_since_last_contact is None

"""The fixed vocabularies of rules.yaml, as string enums."""

from __future__ import annotations

from enum import StrEnum


class Priority(StrEnum):
    """Task priority, ordered low < normal < high < urgent."""

    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"

    @property
    def rank(self) -> int:
        return _PRIORITY_ORDER.index(self)

    def raised(self, steps: int = 1) -> Priority:
        """Return the priority `steps` above this one, capped at urgent."""
        return _PRIORITY_ORDER[min(self.rank + steps, len(_PRIORITY_ORDER) - 1)]

    @classmethod
    def highest(cls, *priorities: Priority) -> Priority:
        """Return the highest of `priorities`."""
        return max(priorities, key=lambda priority: priority.rank)


_PRIORITY_ORDER = tuple(Priority)


class MessageType(StrEnum):
    """WhatsApp message types as the Cloud API names them."""

    text = "text"
    image = "image"
    audio = "audio"
    video = "video"
    document = "document"
    location = "location"
    contacts = "contacts"
    sticker = "sticker"
    interactive = "interactive"
    button = "button"
    reaction = "reaction"
    order = "order"
    flow = "flow"  # a completed WhatsApp Flow (a form): its answers are `flow_fields`
    unsupported = "unsupported"


class Category(StrEnum):
    """What kind of work a task is."""

    sales = "sales"
    support = "support"
    operations = "operations"
    marketing = "marketing"


class Strategy(StrEnum):
    """How a team picks one agent among the eligible ones."""

    least_loaded = "least_loaded"
    round_robin = "round_robin"
    sticky = "sticky"


class BreachStep(StrEnum):
    """What happens, in order, when an SLA is breached."""

    notify_supervisor = "notify_supervisor"
    reassign = "reassign"
    raise_priority = "raise_priority"


class Channel(StrEnum):
    """Where an agent is notified."""

    slack = "slack"
    telegram = "telegram"


class BusinessWindow(StrEnum):
    """The `business_hours:` condition: inside or outside the business calendar."""

    inside = "inside"
    outside = "outside"


class DeadlineKind(StrEnum):
    """Which SLA clock a reminder belongs to."""

    first_response = "first_response"
    resolution = "resolution"

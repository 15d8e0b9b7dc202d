"""The one interface every agent channel implements: send a card, edit it later.

`SlackSender` and `TelegramSender` implement `ChannelSender`, each rendering the
channel-neutral `Notification` itself, so that callers pick a sender by its `channel` and
never switch on channel names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from notifiers.notifications import Notification


class Channel(StrEnum):
    """The agent channels (the outbox row's `channel` and a sender's `channel`)."""

    SLACK = "slack"
    TELEGRAM = "telegram"


@dataclass(frozen=True)
class Recipient:
    """Where a card goes: an agent's direct messages, or a team channel."""

    address: str  # Slack user or channel id; Telegram chat id as text
    team: bool = False  # True: a team channel (Slack posts to the channel as is)


@dataclass(frozen=True)
class CardRef:
    """A delivered card, as the channel knows it (to edit it later)."""

    chat: str
    message: str


class ChannelSender(Protocol):
    """Delivers cards on one agent channel.

    Both methods raise TransientDeliveryError (worth a retry; `retry_after` when the API said
    how long to wait) or PermanentDeliveryError (use another channel), from notifiers.errors.
    """

    channel: str  # "slack" | "telegram" (a class attribute of each sender)

    def send(self, recipient: Recipient, card: Notification) -> CardRef:
        """Delivers `card` to `recipient`; returns where it landed."""
        ...

    def update(self, ref: CardRef, card: Notification) -> None:
        """Replaces the card delivered as `ref` with `card`."""
        ...

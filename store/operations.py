"""What operators look at when something did not get through: outbox rows and outgoing
webhook deliveries that failed, and each channel's latest good and bad delivery (read from
the outbox, without asking the remote APIs)."""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import OutboxMessage, OutboxStatus, WebhookDelivery, WebhookEndpoint
from store.webhooks import DeliveryStatus, list_attempts

FAILED_SHOWN = 100  # rows of each list: the newest; older ones are the CLI's business


def list_failed_outbox(session: Session, *, limit: int = FAILED_SHOWN) -> list[OutboxMessage]:
    """Outbox rows that failed for good (every channel tried), newest first."""
    query = (select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.FAILED)
             .order_by(OutboxMessage.id.desc()).limit(limit))
    return list(session.scalars(query))


@dataclass(frozen=True)
class FailedDelivery:
    """An outgoing webhook delivery given up on, with its endpoint and its last answer."""

    id: int
    endpoint_id: int
    url: str
    type: str
    task_id: int | None
    attempts: int
    created_at: datetime
    last_error: str


def list_failed_deliveries(session: Session, *,
                           limit: int = FAILED_SHOWN) -> list[FailedDelivery]:
    """Outgoing webhook deliveries that failed for good, newest first."""
    query = (select(WebhookDelivery, WebhookEndpoint.url)
             .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
             .where(WebhookDelivery.status == DeliveryStatus.FAILED)
             .order_by(WebhookDelivery.id.desc()).limit(limit))
    found = session.execute(query).all()
    attempts = list_attempts(session, delivery_ids=[delivery.id for delivery, _ in found])
    return [FailedDelivery(d.id, d.endpoint_id, url, d.type, d.task_id, d.attempts,
                           d.created_at, _last_answer(attempts.get(d.id, [])))
            for d, url in found]


def _last_answer(attempts: list) -> str:
    if not attempts:
        return ""
    last = attempts[-1]
    return last.error or (f"HTTP {last.status_code}" if last.status_code else "")


@dataclass(frozen=True)
class ChannelDeliveries:
    """A channel's latest sent message and its latest failed attempt (None: none yet)."""

    channel: str
    last_sent_at: datetime | None
    last_failed_at: datetime | None

    @property
    def failing(self) -> bool:
        """The latest attempt failed: nothing was sent since."""
        if self.last_failed_at is None:
            return False
        return self.last_sent_at is None or self.last_sent_at < self.last_failed_at


def last_deliveries(session: Session, *, channels: Collection[str]) -> list[ChannelDeliveries]:
    """Per channel of `channels`, in that order: when a message last went out and when an
    attempt last failed (a row that still carries its error: failed for good, or waiting for
    a retry; its claim time, else its creation)."""
    sent = dict(session.execute(
        select(OutboxMessage.channel, func.max(OutboxMessage.sent_at))
        .where(OutboxMessage.status == OutboxStatus.SENT,
               OutboxMessage.channel.in_(list(channels)))
        .group_by(OutboxMessage.channel)).all())
    failed_at = func.max(func.coalesce(OutboxMessage.dispatched_at, OutboxMessage.created_at))
    failed = dict(session.execute(
        select(OutboxMessage.channel, failed_at)
        .where(OutboxMessage.last_error.is_not(None),
               OutboxMessage.channel.in_(list(channels)))
        .group_by(OutboxMessage.channel)).all())
    return [ChannelDeliveries(channel, sent.get(channel), failed.get(channel))
            for channel in channels]

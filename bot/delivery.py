"""Delivering outbox rows: agent cards on Slack/Telegram, customer messages on WhatsApp.

A drain claims a batch of rows in its transaction (`claim_outbox`), sends each once after the
commit (`send_claimed`) and records what happened in its next transaction (`record_sends`).
A row whose send fails is handed to its own RQ job, `deliver_job(outbox_id)`: errors worth
retrying are retried a few times in the job (short back-off, 429 Retry-After waited out),
then by RQ's `Retry` (the job raises); after `MAX_RUNS` failed runs, or at once for a
permanent refusal, an agent notification falls back to the agent's other channel, else it is
marked failed with a `delivery_failed` audit event. A row already sent is left alone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.jobs import make_job_id
from bot.runtime import current_services
from bot.services import Services
from bot.settings import Settings
from bot.whatsapp import OutsideWindow, send_customer_message
from notifiers.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from notifiers.notifications import Notification, NotificationKind
from notifiers.slack import SlackSender, render_slack
from notifiers.telegram import TelegramSender, render_telegram
from store.claims import claim_pending, hand_over
from store.events import Audit, record_event
from store.models import OutboxMessage, OutboxStatus, Task
from store.types import utcnow

log = logging.getLogger(__name__)

DELIVER = "bot.delivery.deliver_job"
BACKOFF = (0.25, 0.5, 1.0)  # seconds between quick retries inside one job run
MAX_WAIT = 5.0  # a Retry-After up to this is waited out in the job; longer is rescheduled
MAX_RATE_WAITS = 3
MAX_RUNS = 5  # failed job runs before a channel counts as failed for good


class _Reschedule(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"rate limited for {seconds:.0f} s")
        self.seconds = seconds


def channel_senders(settings: Settings) -> dict[str, Any]:
    """The `slack` / `telegram` senders for `Services` (None when a channel is off)."""
    slack = telegram = None
    if settings.slack_enabled:
        slack = SlackSender(settings.slack_bot_token or "", settings.slack_api_base_url)
    if settings.telegram_enabled:
        telegram = TelegramSender(settings.telegram_bot_token or "", settings.telegram_api_base_url)
    return {"slack": slack, "telegram": telegram}


def outbox_job_id(outbox_id: int) -> str:
    return make_job_id("outbox", outbox_id)


def claim_outbox(session: Session, *, owner: str, limit: int,
                 now: datetime) -> list[OutboxMessage]:
    """Claims up to `limit` free outbox rows for `owner` (a job id), oldest first."""
    ids = claim_pending(session, OutboxMessage, owner=owner, limit=limit, now=now)
    if not ids:
        return []
    query = select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)
    return list(session.scalars(query))


@dataclass
class Sends:
    """What sending claimed rows did, still to record (`record_sends`): until then the rows
    stay claimed by the drain, so that nobody sends them again."""

    sent: list[dict[str, Any]] = field(default_factory=list)  # `_sent_values` of each row
    failed: list[int] = field(default_factory=list)  # rows for their own `deliver_job`

    def __bool__(self) -> bool:
        return bool(self.sent or self.failed)


def send_claimed(services: Services, rows: list[OutboxMessage]) -> Sends:
    """Sends each claimed row once; returns what to record (a drain records it in its next
    transaction)."""
    sends, sent_ids = Sends(), set()
    for row in rows:
        if row.kind == NotificationKind.CARD_UPDATE and row.payload.get("card_id") in sent_ids:
            finish_sends(services, sends)  # the update reads the card's ids from its row
            sends, sent_ids = Sends(), set()
        try:
            chat_id, message_id = _send_once(services, row)
        except Exception as exc:  # the row's own job retries, waits or falls back
            log.info("outbox %s: %s; handing it to its own job", row.id, exc)
            sends.failed.append(row.id)
            continue
        sends.sent.append(_sent_values(row, chat_id=chat_id, message_id=message_id))
        sent_ids.add(row.id)
    return sends


def record_sends(session: Session, sends: Sends, *, now: datetime) -> None:
    """Marks the sent rows sent and hands the failed ones to their own jobs (enqueued by
    `enqueue_failed` once this transaction committed)."""
    if sends.sent:
        session.execute(update(OutboxMessage), sends.sent)
    for row_id in sends.failed:
        hand_over(session, OutboxMessage, [row_id], owner=outbox_job_id(row_id), now=now)


def enqueue_failed(services: Services, sends: Sends) -> None:
    for row_id in sends.failed:
        _enqueue(services, row_id, job_id=outbox_job_id(row_id))


def finish_sends(services: Services, sends: Sends) -> None:
    """Records `sends` in a transaction of its own, then enqueues the failed rows' jobs."""
    if not sends:
        return
    with services.db.transaction() as session:
        record_sends(session, sends, now=utcnow())
    enqueue_failed(services, sends)


def _enqueue(services: Services, outbox_id: int, *, job_id: str, at=None) -> None:
    try:
        services.jobs.enqueue(DELIVER, outbox_id, job_id=job_id, at=at)
    except (RedisError, OSError) as exc:  # the sweeper frees the row once its job is gone
        log.warning("outbox %s: cannot enqueue its job (%s)", outbox_id, exc)


def deliver_job(outbox_id: int) -> None:
    """RQ entry point: delivers one outbox row (see the module docstring)."""
    outcome = deliver_outbox(current_services(), outbox_id)
    log.info("outbox %s: %s", outbox_id, outcome)


def deliver_outbox(services: Services, outbox_id: int) -> str:
    """Delivers one row; returns "sent", "skipped", "failed", "fell_back:<channel>+…" or
    "rescheduled". Raises TransientDeliveryError when RQ should retry the job later."""
    with services.db.transaction(readonly=True) as session:
        row = session.get(OutboxMessage, outbox_id)
    if row is None or row.status != OutboxStatus.PENDING:
        return "skipped"
    try:
        chat_id, message_id = _send_with_retries(services, row)
    except _Reschedule as wait:
        at = utcnow() + timedelta(seconds=wait.seconds)
        job_id = make_job_id("outbox", outbox_id, "at", int(at.timestamp()))
        with services.db.transaction() as session:
            hand_over(session, OutboxMessage, [outbox_id], owner=job_id, now=utcnow())
        _enqueue(services, outbox_id, job_id=job_id, at=at)
        return "rescheduled"
    except TransientDeliveryError as exc:
        if _count_failed_run(services, outbox_id, exc) < MAX_RUNS:
            raise
        return _fall_back(services, outbox_id, exc)
    except PermanentDeliveryError as exc:
        return _fall_back(services, outbox_id, exc)
    _mark_sent(services, outbox_id, chat_id=chat_id, message_id=message_id)
    return "sent"


def _send_with_retries(services: Services, row: OutboxMessage) -> tuple[str | None, str | None]:
    waits, rate_waits = list(BACKOFF), 0
    while True:
        try:
            return _send_once(services, row)
        except TransientDeliveryError as exc:
            if exc.retry_after is not None:
                if exc.retry_after > MAX_WAIT or rate_waits >= MAX_RATE_WAITS:
                    raise _Reschedule(exc.retry_after) from exc
                rate_waits += 1
                time.sleep(exc.retry_after)
            elif waits:
                time.sleep(waits.pop(0))
            else:
                raise


def _send_once(services: Services, row: OutboxMessage) -> tuple[str | None, str | None]:
    if row.channel == "whatsapp":
        return row.payload.get("to"), _whatsapp(services, row)
    if row.kind == NotificationKind.CARD_UPDATE:
        return _update_card(services, row)
    notification = Notification.from_dict(row.payload["notification"])
    address = row.payload["to"][row.channel]
    if row.channel == "slack":
        team = bool(row.payload.get("team_post"))  # a team channel, else the agent's DM
        return _slack(services).send(user=None if team else address,
                                     channel=address if team else None,
                                     card=render_slack(notification))
    if row.channel == "telegram":
        return _telegram(services).send(chat_id=address, card=render_telegram(notification))
    raise PermanentDeliveryError(f"unknown channel {row.channel!r}")


def _whatsapp(services: Services, row: OutboxMessage) -> str:
    try:
        return send_customer_message(services, row)
    except DeliveryError:
        raise  # the sender already said whether a retry can help
    except (OutsideWindow, ValueError) as exc:  # no template, no customer: retrying is futile
        raise PermanentDeliveryError(f"WhatsApp: {exc}") from exc
    except Exception as exc:  # pywa / network errors: intake's sender asks for a retry
        raise TransientDeliveryError(f"WhatsApp: {exc.__class__.__name__}: {exc}") from exc


def _update_card(services: Services, row: OutboxMessage) -> tuple[str | None, str | None]:
    with services.db.transaction(readonly=True) as session:
        card = session.get(OutboxMessage, row.payload["card_id"])
    if card is None or not card.provider_message_id or not card.provider_chat_id:
        raise PermanentDeliveryError("the card to update was never delivered")
    notification = Notification.from_dict(row.payload["notification"])
    chat, message = card.provider_chat_id, card.provider_message_id
    if card.channel == "slack":
        _slack(services).update(channel=chat, message_id=message, card=render_slack(notification))
    else:
        _telegram(services).update(chat_id=chat, message_id=message,
                                   card=render_telegram(notification))
    return chat, message


def _slack(services: Services) -> SlackSender:
    if services.slack is None:
        raise PermanentDeliveryError("Slack is off (SLACK_BOT_TOKEN is not set)")
    return services.slack


def _telegram(services: Services) -> TelegramSender:
    if services.telegram is None:
        raise PermanentDeliveryError("Telegram is off (TELEGRAM_BOT_TOKEN is not set)")
    return services.telegram


def _mark_sent(services: Services, outbox_id: int, *, chat_id, message_id) -> None:
    with services.db.transaction() as session:
        row = session.get(OutboxMessage, outbox_id)
        values = _sent_values(row, chat_id=chat_id, message_id=message_id)
        session.execute(update(OutboxMessage), [values])


def _sent_values(row: OutboxMessage, *, chat_id, message_id) -> dict[str, Any]:
    """The columns of a sent row (for an UPDATE by primary key)."""
    return {
        "id": row.id, "status": OutboxStatus.SENT, "sent_at": utcnow(), "last_error": None,
        "attempts": row.attempts + 1,
        "provider_chat_id": str(chat_id) if chat_id is not None else None,
        "provider_message_id": str(message_id) if message_id is not None else None,
    }


def _count_failed_run(services: Services, outbox_id: int, error: Exception) -> int:
    with services.db.transaction() as session:
        row = session.get(OutboxMessage, outbox_id)
        row.attempts += 1
        row.last_error = str(error)[:1000]
        return row.attempts


def _fall_back(services: Services, outbox_id: int, error: Exception) -> str:
    """Switches an agent notification to the agent's next channel, else marks it failed."""
    with services.db.transaction() as session:
        row = session.get(OutboxMessage, outbox_id)
        tried = [*row.payload.get("tried", []), row.channel]
        others = [c for c in row.payload.get("to") or {} if c not in tried]
        fallback = others[0] if row.kind != NotificationKind.CARD_UPDATE and others else None
        task = session.get(Task, row.task_id) if row.task_id else None
        record_event(session, task=task, actor="system", action=Audit.DELIVERY_FAILED,
                     details={"outbox_id": row.id, "task_id": row.task_id, "kind": row.kind,
                              "channel": row.channel, "error": str(error)[:500],
                              "fallback": fallback})
        row.last_error = str(error)[:1000]
        if fallback is None:
            row.status = OutboxStatus.FAILED
        else:
            row.payload = {**row.payload, "tried": tried}
            row.channel, row.attempts = fallback, 0
    if fallback is None:
        return "failed"
    return f"fell_back:{fallback}+" + deliver_outbox(services, outbox_id)

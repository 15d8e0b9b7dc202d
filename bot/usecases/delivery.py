"""Delivering outbox rows: agent cards on Slack/Telegram, customer messages on WhatsApp.

A drain claims a batch of rows in its transaction (`store.claims.claim_outbox`), sends each
once after the commit (`send_claimed`) and records what happened in its next transaction
(`record_sends`). A row whose send fails is handed to its own job, which calls
`deliver_outbox`: errors worth retrying are retried a few times in the job (short back-off,
429 Retry-After waited out), then by the job's retry policy (it raises); after `RETRY`'s
runs, or at once for a permanent refusal, an agent notification falls back to the agent's
other channel, else it is marked failed with a `delivery_failed` audit event. A row already
sent is left alone. A `survey` row is sent by `bot.usecases.surveys.send_survey`; one it
skips (nothing to send, the survey says why) is done like a sent row, and a refused one is
noted on its survey instead of being reported to the agent. Nothing here talks to Redis: the
worker enqueues the jobs these functions hand rows to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy.orm import Session

from bot.core import tunables
from bot.core.jobs import RETRY, outbox_job_id
from bot.core.media_links import MediaLinks
from bot.usecases.surveys import send_survey
from bot.whatsapp.sending import WhatsAppSender
from notifiers.channels import CardRef, ChannelSender
from notifiers.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from notifiers.notifications import Notification, NotificationKind
from notifiers.queueing import card_recipient, queue_notification
from rules import RulesConfig, detect_language
from store.claims import hand_over
from store.contacts import reply_window_closes
from store.db import Database, write_through
from store.events import Audit, record_event
from store.models import Contact, Message, OutboxMessage, OutboxStatus, SurveyStatus, Task
from store.outbox import CUSTOMER_CHANNEL, list_posted, mark_outbox_sent
from store.surveys import SURVEY_KIND, mark_survey_unsent
from store.tasks import record_first_response
from store.types import utcnow

log = logging.getLogger(__name__)
SEND_THREAD = "opsbot-send"  # the threads of `_senders`



class DeliveryOutcome(StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"  # not pending any more: sent or failed already
    FAILED = "failed"  # failed for good, on every channel it could use
    RESCHEDULED = "rescheduled"  # rate limited for longer than a job waits


@dataclass(frozen=True)
class Delivered:
    """What delivering one row did; `fell_back_to`: the channels it switched to, in order."""

    outcome: DeliveryOutcome
    fell_back_to: tuple[str, ...] = ()
    retry_at: datetime | None = None  # RESCHEDULED: when the row's next job runs

    def __str__(self) -> str:
        return "".join(f"fell_back:{channel}+" for channel in self.fell_back_to) + self.outcome


@dataclass(frozen=True)
class Outlets:
    """Everything a delivery may send through, and the rules it reads (the template for a
    customer outside the window, who is told of a refused customer message)."""

    agents: Mapping[str, ChannelSender]  # by channel name: the agent channels that are on
    whatsapp: WhatsAppSender | None  # None: WhatsApp is off
    config: RulesConfig
    media_links: MediaLinks | None = None  # None: cards name the customer's media, no link


class _Reschedule(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"rate limited for {seconds:.0f} s")
        self.seconds = seconds


@dataclass(frozen=True)
class PostedCard:
    """Where a card was posted: its channel and the channel's ids of it."""

    channel: str
    ref: CardRef


@dataclass
class Sends:
    """What sending claimed rows did, still to record (`record_sends`): until then the rows
    stay claimed by the drain, so that nobody sends them again."""

    sent: list[dict[str, Any]] = field(default_factory=list)  # `_sent_values` of each row
    failed: list[int] = field(default_factory=list)  # rows for their own delivery job

    def __bool__(self) -> bool:
        return bool(self.sent or self.failed)


def send_claimed(db: Database, outlets: Outlets, rows: list[OutboxMessage],
                 posted: dict[int, PostedCard]) -> Sends:
    """Sends each claimed row once, a card update to the card in `posted` (`posted_cards`,
    read in the claim's transaction: cards are updated once recorded as delivered); returns
    what to record (a drain records it in its next transaction).

    The rows go in lanes (`_lane`): one customer's messages, one task's cards and card
    updates, each lane in the order queued; up to SEND_LANES lanes at the same time. Slack,
    Telegram and the Graph API answer in 0.1-0.3 s from afar: one row after another, a
    worker sent fewer than ten a second, and the last card of a step waited for the others."""
    lanes: dict[tuple, list[OutboxMessage]] = {}
    for row in rows:
        lanes.setdefault(_lane(row), []).append(row)
    run = _senders().map if len(lanes) > 1 else map
    sends = Sends()
    for sent in run(lambda lane: _send_lane(db, outlets, lane, posted), lanes.values()):
        sends.sent += sent.sent
        sends.failed += sent.failed
    return sends


def _lane(row: OutboxMessage) -> tuple:
    """The rows that must go out in their order share a lane: a customer's messages (an
    acknowledgement before the agent's reply), a task's card before its updates."""
    if row.channel == CUSTOMER_CHANNEL:
        return CUSTOMER_CHANNEL, row.contact_id
    if row.task_id is not None:
        return "task", row.task_id
    return row.channel, row.agent_id


def _send_lane(db: Database, outlets: Outlets, lane: list[OutboxMessage],
               posted: dict[int, PostedCard]) -> Sends:
    """Sends a lane's rows one after another, in order."""
    sends = Sends()
    for row in lane:
        try:
            chat_id, message_id = _send_once(db, outlets, row, posted)
        except Exception as exc:  # the row's own job retries, waits or falls back
            log.info("outbox %s: %s; handing it to its own job", row.id, exc)
            sends.failed.append(row.id)
            continue
        sends.sent.append(_sent_values(row, chat_id=chat_id, message_id=message_id))
    return sends


@cache
def _senders() -> ThreadPoolExecutor:
    """The threads that send lanes at the same time, one pool for the process's life (its
    threads are named SEND_THREAD_n: a worker's stage clock counts them as delivery)."""
    return ThreadPoolExecutor(max_workers=tunables.SEND_LANES, thread_name_prefix=SEND_THREAD)


def posted_cards(session: Session, rows: list[OutboxMessage]) -> dict[int, PostedCard]:
    """Where each card that the card updates among `rows` replace was posted, by the card's
    row id (one query; a card not delivered yet is left out)."""
    ids = {row.payload["card_id"] for row in rows if row.kind == NotificationKind.CARD_UPDATE}
    return {card_id: PostedCard(channel, CardRef(chat, message))
            for card_id, channel, chat, message in list_posted(session, ids=ids)}


def record_sends(session: Session, sends: Sends, *, now: datetime) -> list[int]:
    """Marks the sent rows sent and hands the failed ones to their own delivery jobs;
    returns the failed rows, whose jobs the caller enqueues once this transaction commits."""
    mark_outbox_sent(session, rows=sends.sent)
    for row_id in sends.failed:
        hand_over(session, OutboxMessage, [row_id], owner=outbox_job_id(row_id), now=now)
    return list(sends.failed)


def deliver_outbox(db: Database, outlets: Outlets, outbox_id: int) -> Delivered:
    """Delivers one row (see the module docstring). Raises TransientDeliveryError when its
    job should be retried later."""
    with db.transaction(readonly=True) as session:
        row = session.get(OutboxMessage, outbox_id)
        posted = posted_cards(session, [row]) if row is not None else {}
    if row is None or row.status != OutboxStatus.PENDING:
        return Delivered(DeliveryOutcome.SKIPPED)
    try:
        chat_id, message_id = _send_with_retries(db, outlets, row, posted)
    except _Reschedule as wait:
        at = utcnow() + timedelta(seconds=wait.seconds)
        with db.transaction() as session:
            hand_over(session, OutboxMessage, [outbox_id], owner=outbox_job_id(outbox_id, at=at),
                      now=utcnow())
        return Delivered(DeliveryOutcome.RESCHEDULED, retry_at=at)
    except TransientDeliveryError as exc:
        if _count_failed_run(db, outbox_id, exc) < RETRY.retries:
            raise
        return _fall_back(db, outlets, outbox_id, exc)
    except PermanentDeliveryError as exc:
        return _fall_back(db, outlets, outbox_id, exc)
    _record_sent(db, [_sent_values(row, chat_id=chat_id, message_id=message_id)])
    return Delivered(DeliveryOutcome.SENT)


def _send_with_retries(db: Database, outlets: Outlets, row: OutboxMessage,
                       posted: dict[int, PostedCard]) -> tuple[str | None, str | None]:
    waits, rate_waits = list(tunables.BACKOFF), 0
    while True:
        try:
            return _send_once(db, outlets, row, posted)
        except TransientDeliveryError as exc:
            if exc.retry_after is not None:
                if exc.retry_after > tunables.MAX_WAIT or rate_waits >= tunables.MAX_RATE_WAITS:
                    raise _Reschedule(exc.retry_after) from exc
                rate_waits += 1
                time.sleep(exc.retry_after)
            elif waits:
                time.sleep(waits.pop(0))
            else:
                raise


def _send_once(db: Database, outlets: Outlets, row: OutboxMessage,
               posted: dict[int, PostedCard]) -> tuple[str | None, str | None]:
    if row.channel == CUSTOMER_CHANNEL:  # the customer's number stays sealed in the payload
        return None, _whatsapp(db, outlets, row)
    if row.kind == NotificationKind.CARD_UPDATE:
        return _update_card(outlets, row, posted)
    notification = _card(outlets, row)
    recipient = card_recipient(row.payload, channel=row.channel)
    ref = _agent_channel(outlets, row.channel).send(recipient, notification)
    return ref.chat, ref.message


def _whatsapp(db: Database, outlets: Outlets, row: OutboxMessage) -> str | None:
    try:
        if row.kind == SURVEY_KIND:  # None: skipped (the survey says why), the row is done
            return send_survey(db, outlets.whatsapp, outlets.config, row)
        return send_customer_message(db, outlets, row)
    except DeliveryError:
        raise  # the sender already said whether a retry can help
    except ValueError as exc:  # e.g. a payload without a customer: retrying is futile
        raise PermanentDeliveryError(f"WhatsApp: {exc}") from exc
    except Exception as exc:  # the database, mostly: worth another run
        raise TransientDeliveryError(f"WhatsApp: {exc.__class__.__name__}: {exc}") from exc


def _update_card(outlets: Outlets, row: OutboxMessage,
                 posted: dict[int, PostedCard]) -> tuple[str | None, str | None]:
    card = posted.get(row.payload["card_id"])
    if card is None:
        raise PermanentDeliveryError("the card to update was never delivered")
    _agent_channel(outlets, card.channel).update(card.ref, _card(outlets, row))
    return card.ref.chat, card.ref.message


def _card(outlets: Outlets, row: OutboxMessage) -> Notification:
    """The row's card, its customer's media linked when links can be signed here: a link is
    signed at each send, so that it expires MEDIA_LINK_TTL after the agent got it."""
    notification = Notification.from_dict(row.payload["notification"])
    if outlets.media_links is None or notification.media is None:
        return notification
    return notification.with_media_link(
        outlets.media_links.url_for(notification.media.message_id))


def _agent_channel(outlets: Outlets, channel: str) -> ChannelSender:
    sender = outlets.agents.get(channel)
    if sender is None:
        raise PermanentDeliveryError(f"the {channel} channel is off (its bot token is not set)")
    return sender


@dataclass(frozen=True)
class _CustomerSend:
    message_id: int | None
    to: str
    sender: str | None  # the business number the customer last wrote to (None: the default)
    text: str
    via: str  # "text" or "template"
    already_sent: str | None
    language: str | None = None  # the customer's, when the message was queued


def send_customer_message(db: Database, outlets: Outlets, outbox: OutboxMessage) -> str:
    """Sends a queued customer message (ack, reply, closing) and returns the wamid: free
    text inside the 24 h window, the configured template outside it. Records on the
    outbound Message row which way was used (`via`), the wamid, or the error. A message
    already sent is not sent again: its wamid is returned. Raises TransientDeliveryError or
    PermanentDeliveryError (e.g. outside the window without a template)."""
    plan = _plan(db, outbox, now=utcnow())
    if plan.already_sent:
        return plan.already_sent
    try:
        wamid = _send_customer(outlets, plan)
    except DeliveryError as exc:
        _record_customer_send(db, plan, error=f"{exc.__class__.__name__}: {exc}")
        raise
    write_through(lambda: _record_customer_send(db, plan, wamid=wamid),
                  waits=tunables.BACKOFF, what=f"message {plan.message_id} sent as {wamid}")
    return wamid


def _plan(db: Database, outbox: OutboxMessage, *, now: datetime) -> _CustomerSend:
    with db.transaction(readonly=True) as session:  # on SQLite, no wait for the writer
        message_id = (outbox.payload or {}).get("message_id")
        message = session.get(Message, message_id) if message_id else None
        contact = session.get(Contact, outbox.contact_id) if outbox.contact_id else None
        if contact is None:
            raise PermanentDeliveryError(f"outbox {outbox.id} has no customer to send to")
        to = contact.wa_id or contact.user_id or outbox.payload.get("to")
        closes = reply_window_closes(contact)
        inside = closes is not None and now < closes
        text = (message.text if message else None) or outbox.payload.get("text", "")
        sent = message.provider_message_id if message is not None else None
        return _CustomerSend(message_id, str(to), contact.business_phone_id, text,
                             "text" if inside else "template", sent,
                             outbox.payload.get("language") or contact.language)


def _send_customer(outlets: Outlets, plan: _CustomerSend) -> str:
    if outlets.whatsapp is None:
        raise PermanentDeliveryError("WhatsApp is off (WHATSAPP_TOKEN is not set)")
    if plan.via == "text":
        return outlets.whatsapp.send_text(to=plan.to, text=plan.text, sender=plan.sender)
    template = outlets.config.out_of_window_template
    if template is None:
        raise PermanentDeliveryError(
            "WhatsApp: the customer wrote more than 24 h ago and rules.yaml has no "
            "out_of_window_template to send instead")
    # The template's own words must be in the language of the text it carries.
    config = outlets.config
    language = template.language_for(detect_language(plan.text, template.languages),
                                     plan.language, config.default_language)
    return outlets.whatsapp.send_template(to=plan.to, template=template, text=plan.text,
                                          sender=plan.sender, language=language)


def _record_customer_send(db: Database, plan: _CustomerSend, *, wamid: str | None = None,
                          error: str | None = None) -> None:
    if plan.message_id is None:
        return
    with db.transaction() as session:
        message = session.get(Message, plan.message_id)
        if message is None:
            return
        message.via = plan.via
        if wamid:
            message.provider_message_id, message.status = wamid, "sent"
            message.sent_at, message.error = utcnow(), None
            record_first_response(session, message=message, at=message.sent_at)
        else:
            message.error = error[:4000] if error else None


def _record_sent(db: Database, values: list[dict[str, Any]]) -> None:
    if values:
        with db.transaction() as session:
            mark_outbox_sent(session, rows=values)


def _sent_values(row: OutboxMessage, *, chat_id, message_id) -> dict[str, Any]:
    """The columns of a sent row (for an UPDATE by primary key)."""
    return {
        "id": row.id, "status": OutboxStatus.SENT, "sent_at": utcnow(), "last_error": None,
        "attempts": row.attempts + 1,
        "provider_chat_id": str(chat_id) if chat_id is not None else None,
        "provider_message_id": str(message_id) if message_id is not None else None,
    }


def _count_failed_run(db: Database, outbox_id: int, error: Exception) -> int:
    with db.transaction() as session:
        row = session.get(OutboxMessage, outbox_id)
        row.attempts += 1
        row.last_error = str(error)[:1000]
        return row.attempts


def _fall_back(db: Database, outlets: Outlets, outbox_id: int, error: Exception) -> Delivered:
    """Switches an agent notification to the agent's next channel; else marks the row failed
    (a refused customer message also goes to the task's assignee as a card)."""
    with db.transaction() as session:
        row = session.get(OutboxMessage, outbox_id)
        fallback = _next_channel(row)
        task = session.get(Task, row.task_id) if row.task_id else None
        record_event(session, task=task, actor="system", action=Audit.DELIVERY_FAILED,
                     details={"outbox_id": row.id, "task_id": row.task_id, "kind": row.kind,
                              "channel": row.channel, "error": str(error)[:500],
                              "fallback": fallback})
        row.last_error = str(error)[:1000]
        if fallback is not None:
            row.payload = {**row.payload, "tried": [*row.payload.get("tried", []), row.channel]}
            row.channel, row.attempts = fallback, 0
        else:
            row.status = OutboxStatus.FAILED
            _customer_failed(session, outlets.config, task, row, error)
    if fallback is None:
        return Delivered(DeliveryOutcome.FAILED)
    then = deliver_outbox(db, outlets, outbox_id)
    return Delivered(then.outcome, (fallback, *then.fell_back_to), then.retry_at)


def _customer_failed(session: Session, config: RulesConfig, task: Task | None,
                     row: OutboxMessage, error: Exception) -> None:
    """A refused survey is noted on it (the agent has nothing to do about it); another
    refused customer message goes to the task's assignee as a card."""
    if row.channel != CUSTOMER_CHANNEL or task is None:
        return
    if row.kind == SURVEY_KIND:
        mark_survey_unsent(session, task_id=task.id, status=SurveyStatus.FAILED, note=str(error))
    elif task.assignee_id:
        _tell_assignee(session, config, task, row, error)


def _next_channel(row: OutboxMessage) -> str | None:
    """The agent's next channel for a notification; None for a card update and for a
    customer message (its `to` is the customer's number, not an agent's addresses)."""
    if row.channel == CUSTOMER_CHANNEL or row.kind == NotificationKind.CARD_UPDATE:
        return None
    tried = [*row.payload.get("tried", []), row.channel]
    return next((c for c in row.payload.get("to") or {} if c not in tried), None)


def _tell_assignee(session: Session, config: RulesConfig, task: Task, row: OutboxMessage,
                   error: Exception) -> None:
    queue_notification(session, config=config, kind=NotificationKind.CUSTOMER_REFUSED,
                       task=task, agent_id=task.assignee_id, dedupe_key=f"refused-{row.id}",
                       details={"note": f"{error}"[:500]})

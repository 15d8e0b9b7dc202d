"""Queue notifications to agents (and team channels) as outbox rows, in the caller's session.

The worker delivers the rows later through a `ChannelSender`; `card_recipient` reads back
where a queued card goes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from notifiers.channels import Channel, Recipient
from notifiers.notifications import (
    Notification,
    NotificationKind,
    build_notification,
    with_outcome,
)
from rules import Agent, RulesConfig
from store.messages import find_last_inbound
from store.models import Message, OutboxMessage, Task
from store.outbox import add_outbox_message, list_delivered_cards

AGENT_CHANNELS = tuple(Channel)


def recipients_of(agent: Agent) -> dict[str, str | int]:
    """The agent's addresses per channel, preferred channel first."""
    found: dict[str, str | int] = {}
    if agent.slack:
        found[Channel.SLACK] = agent.slack
    if agent.telegram is not None:
        found[Channel.TELEGRAM] = agent.telegram
    preferred = str(agent.preferred_channel) if agent.preferred_channel else None
    if preferred in found:
        found = {preferred: found[preferred], **found}
    return found


def team_recipients(config: RulesConfig, team: str | None) -> dict[str, str | int]:
    """The team's channel addresses (Slack channel first), empty for an unknown team."""
    found = config.teams.get(team) if team else None
    if found is None:
        return {}
    addresses: dict[str, str | int] = {}
    if found.slack_channel:
        addresses[Channel.SLACK] = found.slack_channel
    if found.telegram_chat is not None:
        addresses[Channel.TELEGRAM] = found.telegram_chat
    return addresses


def card_recipient(payload: dict[str, Any], *, channel: str) -> Recipient:
    """Where the card queued with `payload` (by `queue_notification`) goes on `channel`.

    Raises KeyError when the payload has no address on `channel`.
    """
    return Recipient(str(payload["to"][channel]), team=bool(payload.get("team_post")))


def queue_notification(
    session: Session,
    *,
    config: RulesConfig,
    kind: NotificationKind | str,
    task: Task | None,
    agent_id: str | None,
    dedupe_key: str,
    details: dict[str, Any] | None = None,
    new_key: bool = False,
) -> OutboxMessage | None:
    """Adds the outbox row that notifies `agent_id` of `task`, once per `dedupe_key`.

    The channel is the agent's preferred one, else the one they have; the payload keeps every
    address so that delivery can fall back to the other. `agent_id=None` posts to the team
    channel of `details["team"]` (else the task's team). `task` may be None only for a digest.
    Returns None when the key was queued before or nobody can be reached (no address).
    `new_key`: no row can have the key yet (see `store.outbox.add_outbox_message`).
    """
    details = dict(details or {})
    if agent_id is not None:
        agent = config.agent(agent_id)
        to = recipients_of(agent) if agent is not None else {}
    else:
        to = team_recipients(config, details.get("team") or (task.team if task else None))
    if not to:
        return None
    if task is not None and "text" not in details and "customer_text" not in details:
        details.update(customer_message(session, task=task))
    notification = build_notification(kind, config=config, task=task, details=details)
    return add_outbox_message(
        session,
        dedupe_key=dedupe_key,
        channel=next(iter(to)),
        kind=notification.kind,
        payload={"to": to, "team_post": agent_id is None, "notification": notification.as_dict()},
        task_id=task.id if task is not None else None,
        agent_id=agent_id,
        new_key=new_key,
    )


def customer_message(session: Session, *, task: Task) -> dict[str, Any]:
    """The card details of the customer's latest message in `task`: customer_text, and
    media/media_file/media_message_id for an image, a document…; empty when there is none."""
    message = find_last_inbound(session, task_id=task.id)
    return message_details(message) if message is not None else {}


def message_details(message: Message) -> dict[str, Any]:
    """The card details of one customer message (see `customer_message`)."""
    found: dict[str, Any] = {"customer_text": message.text or f"[{message.type}]"}
    if message.media_id:
        found["media"] = message.type
        found["media_file"] = (message.payload or {}).get("filename")
        found["media_message_id"] = message.id
    return found


def queue_card_updates(
    session: Session, *, task: Task, line: str, now: datetime
) -> list[OutboxMessage]:
    """Queues an edit of every card already delivered about `task`: `line` and new buttons.

    Returns the rows queued. Cards not delivered yet are left alone (they will be shown as
    they were queued).
    """
    cards = list_delivered_cards(session, task_id=task.id, channels=AGENT_CHANNELS,
                                 exclude_kinds=(NotificationKind.CARD_UPDATE,))
    queued = []
    for card in cards:
        row = add_outbox_message(
            session,
            dedupe_key=f"card-{card.id}-{task.timer_generation}-{int(now.timestamp())}",
            channel=card.channel,
            kind=NotificationKind.CARD_UPDATE,
            payload={"card_id": card.id, "notification": _updated(card, task, line).as_dict()},
            task_id=task.id,
            agent_id=card.agent_id,
        )
        if row is not None:
            queued.append(row)
    return queued


def _updated(card: OutboxMessage, task: Task, line: str) -> Notification:
    """The delivered `card` as it reads now that `task` moved on."""
    original = Notification.from_dict(card.payload["notification"])
    updated = with_outcome(original, line=line, status=task.status)
    if card.agent_id is not None and card.agent_id != task.assignee_id:
        updated = replace(updated, buttons=())  # no longer theirs: nothing to press
    return updated

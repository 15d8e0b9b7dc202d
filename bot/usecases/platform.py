"""Errors Meta reports about the account or a number rather than one message (a webhook
whose `value` carries `errors`, e.g. 130429 "Rate limit hit"): each is logged at ERROR and
kept on the audit trail, where the report counts them, and the admins get a card at most once
per error code per PLATFORM_ERROR_CARD_EVERY. Called inside the caller's transaction."""

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from bot.core import tunables
from bot.whatsapp.parsing import PlatformError
from notifiers.notifications import NotificationKind
from notifiers.queueing import queue_notification
from rules import RulesConfig
from store.events import Audit, record_event
from store.outbox import queued_since

log = logging.getLogger(__name__)


def record_platform_errors(session: Session, *, config: RulesConfig,
                           errors: list[PlatformError], now: datetime) -> str:
    """Records, logs and tells the admins of `errors`; returns a one-line summary."""
    for error in errors:
        log.error("WhatsApp reported an error: %s", error)
        record_event(session, task=None, actor="whatsapp", action=Audit.WHATSAPP_ERROR,
                     details={"code": error.code, "title": error.title,
                              "details": error.details}, at=now)
        _tell_admins(session, config, error, now)
    return "; ".join(str(error) for error in errors)


def _tell_admins(session: Session, config: RulesConfig, error: PlatformError,
                 now: datetime) -> None:
    prefix = f"wa-error-{error.code}-"
    if queued_since(session, key_prefix=prefix,
                    since=now - tunables.PLATFORM_ERROR_CARD_EVERY):
        return
    details = {"code": error.code, "title": error.title, "details": error.details}
    for agent in (agent for agent in config.agents if agent.admin):
        queue_notification(session, config=config, kind=NotificationKind.WHATSAPP_ERROR,
                           task=None, agent_id=agent.id, details=details,
                           dedupe_key=f"{prefix}{agent.id}-{int(now.timestamp())}")

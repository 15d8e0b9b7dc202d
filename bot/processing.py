"""Processing stored inbound events: the use case that turns a customer message into work.

`process_event_job` is the RQ entry point; `process_event` does the work for `services`.
Everything one message changes (contact, message, task, audit, outbox, the event's own
status) is committed in ONE transaction, so a re-run after a crash is a no-op or a redo.
"""

import logging
from datetime import datetime

from sqlalchemy.exc import OperationalError

from bot.customer_messages import apply_message, apply_status_update
from bot.inbound import read_message, read_status
from bot.payloads import PayloadError
from bot.services import Services
from store.errors import ConcurrentUpdate
from store.inbound import earlier_pending_event_ids, get_event, mark_processed, record_failure
from store.models import EventStatus, InboundEvent
from store.types import utcnow

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 3
_RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure


class RetryLater(Exception):
    """The event cannot be applied yet (e.g. a status for a send not yet recorded)."""


def process_event_job(event_id: int) -> str:
    """RQ entry point: processes one stored event, then dispatches what it queued."""
    from bot.dispatch import dispatch_pending
    from bot.runtime import current_services

    services = current_services()
    outcome = process_event(services, event_id)
    dispatch_pending(services)
    return outcome


def process_event(services: Services, event_id: int, *, now: datetime | None = None) -> str:
    """Processes the event after the same customer's earlier pending messages (WhatsApp
    timestamp order). Returns the outcome ("created", "threaded", "duplicate", "failed",
    "already processed", …). Raises for transient trouble, so that the job is retried."""
    with services.db.transaction() as session:
        event = get_event(session, event_id=event_id)
        earlier = earlier_pending_event_ids(session, event=event) if event else []
    for earlier_id in earlier:
        _process_one(services, earlier_id, now)
    return _process_one(services, event_id, now)


def _process_one(services: Services, event_id: int, now: datetime | None) -> str:
    # A task changed by an agent (or a timer) at the same moment, or a PostgreSQL deadlock
    # with another writer of the same task: redo the whole transaction.
    for _ in range(CONFLICT_RETRIES):
        try:
            return _process_once(services, event_id, now)
        except (ConcurrentUpdate, OperationalError) as exc:
            if not _is_conflict(exc):
                raise
            log.info("inbound event %s met a concurrent update (%s); redoing it", event_id,
                     exc.__class__.__name__)
    return _process_once(services, event_id, now)


def _is_conflict(exc: Exception) -> bool:
    if isinstance(exc, ConcurrentUpdate):
        return True
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in _RETRYABLE_SQLSTATES


def _process_once(services: Services, event_id: int, now: datetime | None) -> str:
    try:
        with services.db.transaction() as session:
            event = get_event(session, event_id=event_id, for_update=True)
            if event is None:
                return "missing"
            if event.status != EventStatus.PENDING:
                return f"already {event.status}"
            return _apply(session, services, event, now or utcnow())
    except PayloadError as exc:
        _fail(services, event_id, f"cannot read the payload: {exc}", final=True)
        return "failed"
    except (ConcurrentUpdate, OperationalError) as exc:
        if not _is_conflict(exc):
            _fail(services, event_id, f"{exc.__class__.__name__}: {exc}", final=False)
        raise
    except Exception as exc:
        _fail(services, event_id, f"{exc.__class__.__name__}: {exc}", final=False)
        raise


def _apply(session, services: Services, event: InboundEvent, now: datetime) -> str:
    config = services.rules.current
    if event.kind == "message":
        outcome = apply_message(session, config=config, message=read_message(event.raw_body),
                                now=now)
        mark_processed(event, now=now)
        return outcome
    if event.kind == "status":
        found = apply_status_update(session, status=read_status(event.raw_body), now=now)
        if not found and event.attempts < 2:
            # The status may have overtaken the send that records its wamid: try again later.
            raise RetryLater("no outbound message with this id yet")
        mark_processed(event, now=now, note=None if found else "no outbound message with this id")
        return "status" if found else "status of an unknown message"
    mark_processed(event, now=now, note="neither a message nor a status: nothing to do")
    return "skipped"


def _fail(services: Services, event_id: int, reason: str, *, final: bool) -> None:
    with services.db.transaction() as session:
        failed = record_failure(session, event_id=event_id, reason=reason, final=final)
    if failed:
        log.error("inbound event %s failed for good: %s", event_id, reason)
    else:
        log.warning("inbound event %s: %s (will retry)", event_id, reason)

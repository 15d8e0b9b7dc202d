"""Processing stored inbound events: the use case that turns customer messages into work.

A drain calls `apply_pending` in its transaction: it takes a batch of pending events and
applies them in each customer's WhatsApp timestamp order, in one savepoint (one per event
when an event fails, so that only that one is set aside). Everything a
message changes (contact, message, task, audit, outbox, the event's own status) commits
together, so a crash loses nothing and a re-run is a no-op or a redo. An event that fails is
counted and handed to its own retry job (`process_event_job`) after a growing delay; after
`MAX_ATTEMPTS` failures, or at once when its payload cannot be read, it is FAILED and listed
by `opsbot events failed`.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from bot.customer_messages import apply_message, apply_status_update
from bot.inbound import read_message, read_status
from bot.jobs import make_job_id
from bot.payloads import PayloadError
from bot.services import Services
from store.claims import hand_over
from store.errors import ConcurrentUpdate
from store.inbound import (
    earlier_pending_events,
    get_event,
    lock_free_events,
    mark_processed,
    note_failure,
)
from store.models import EventStatus, InboundEvent
from store.types import utcnow

log = logging.getLogger(__name__)

PROCESS_EVENT = "bot.processing.process_event_job"
CONFLICT_RETRIES = 3
RETRY_DELAYS = (2, 10, 30, 120, 600)  # seconds before the retry that follows failure n
_RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure


class RetryLater(Exception):
    """The event cannot be applied yet (e.g. a status for a send not yet recorded)."""


@dataclass
class Applied:
    """What `apply_events` did: how many events it took, each outcome, and the events to
    retry later (`schedule_retries` enqueues their jobs once the transaction committed)."""

    taken: int = 0
    outcomes: dict[int, str] = field(default_factory=dict)
    retries: list[InboundEvent] = field(default_factory=list)


def apply_pending(session: Session, services: Services, *, limit: int,
                  now: datetime) -> Applied:
    """Applies up to `limit` pending events that no job holds."""
    return apply_events(session, services, lock_free_events(session, limit=limit), now=now)


def apply_events(session: Session, services: Services, taken: list[InboundEvent], *,
                 now: datetime) -> Applied:
    """Applies `taken` (locked in this transaction) after the same customers' earlier
    pending messages: all in one savepoint, and when one of them fails, again one savepoint
    per event so that only the failing one is set aside (a savepoint per event costs a fifth
    of the processing, and failures are rare).

    In the one savepoint, what a message changes through the ORM is flushed once at the end
    rather than before the next message's first query (a flush per message cost another
    eighth): only a later message of the same customer (`contact_key`) reads those changes,
    so the changes are flushed before such a message. A message that changed a customer's
    ids under another key may break a unique key at the final flush: the careful pass then
    applies the batch again, flushing as usual."""
    applied = Applied(taken=len(taken))
    events = sorted(taken + earlier_pending_events(session, events=taken), key=_customer_order)
    try:
        with session.begin_nested(), session.no_autoflush:
            customers: set[str | None] = set()
            for event in events:
                if event.contact_key is None or event.contact_key in customers:
                    session.flush()
                customers.add(event.contact_key)
                applied.outcomes[event.id] = _apply_pending(session, services, event, now)
    except Exception as exc:  # the batch is rolled back; the careful pass finds the culprit
        session.info.clear()  # per-transaction caches may hold what was rolled back
        log.info("a batch of %d event(s) met %s; applying them one by one", len(events),
                 exc.__class__.__name__)
        applied.outcomes.clear()
        for event in events:
            applied.outcomes[event.id] = _process_one(session, services, event, now,
                                                      applied.retries)
    for event in applied.retries:
        hand_over(session, InboundEvent, [event.id], owner=_retry_job_id(event), now=now)
    return applied


def schedule_retries(services: Services, applied: Applied, now: datetime) -> None:
    """Enqueues the retry job of each event that failed (after the commit)."""
    for event in applied.retries:
        delay = RETRY_DELAYS[min(event.attempts, len(RETRY_DELAYS)) - 1]
        try:
            services.jobs.enqueue(PROCESS_EVENT, event.id, job_id=_retry_job_id(event),
                                  at=now + timedelta(seconds=delay))
        except (RedisError, OSError) as exc:  # the sweeper frees the event once its job is gone
            log.warning("inbound event %s: cannot schedule its retry (%s)", event.id, exc)


def process_event(services: Services, event_id: int, *, now: datetime | None = None) -> str:
    """Applies one event (after the same customer's earlier pending messages). Returns what
    happened: "created", "threaded", "duplicate", "status", "failed", "retrying",
    "already processed", "missing"…"""
    now = now or utcnow()
    with services.db.transaction() as session:
        event = get_event(session, event_id=event_id, for_update=True)
        applied = apply_events(session, services, [event] if event else [], now=now)
    schedule_retries(services, applied, now)
    return applied.outcomes.get(event_id, "missing")


def process_event_job(event_id: int) -> str:
    """RQ entry point of an event's retry: applies it, then asks for a drain of what it
    queued (notifications, replies, timers)."""
    from bot.dispatch import request_drain
    from bot.runtime import current_services

    services = current_services()
    outcome = process_event(services, event_id)
    request_drain(services)
    return outcome


def _customer_order(event: InboundEvent) -> tuple[datetime, int]:
    return event.occurred_at or event.received_at, event.id


def _apply_pending(session: Session, services: Services, event: InboundEvent,
                   now: datetime) -> str:
    if event.status != EventStatus.PENDING:
        return f"already {event.status}"
    return _apply(session, services, event, now)


def _process_one(session: Session, services: Services, event: InboundEvent, now: datetime,
                 retries: list[InboundEvent]) -> str:
    conflicts = 0
    while True:
        try:
            with session.begin_nested():
                return _apply_pending(session, services, event, now)
        except PayloadError as exc:
            session.info.clear()  # per-transaction caches may hold what was rolled back
            note_failure(event, reason=f"cannot read the payload: {exc}", final=True)
            log.error("inbound event %s failed for good: %s", event.id, event.error)
            return "failed"
        except Exception as exc:
            session.info.clear()
            if not _is_conflict(exc) or conflicts == CONFLICT_RETRIES:
                return _failed(event, exc, retries)
            # A task changed by an agent or a timer at the same moment, or a PostgreSQL
            # deadlock with another writer of the same task: redo this event.
            conflicts += 1
            log.info("inbound event %s met a concurrent update (%s); redoing it", event.id,
                     exc.__class__.__name__)


def _failed(event: InboundEvent, exc: Exception, retries: list[InboundEvent]) -> str:
    if note_failure(event, reason=f"{exc.__class__.__name__}: {exc}"):
        log.error("inbound event %s failed for good: %s", event.id, event.error)
        return "failed"
    level = logging.INFO if isinstance(exc, RetryLater) else logging.WARNING
    log.log(level, "inbound event %s: %s (will retry)", event.id, event.error,
            exc_info=not isinstance(exc, RetryLater))
    retries.append(event)
    return "retrying"


def _is_conflict(exc: Exception) -> bool:
    if isinstance(exc, (ConcurrentUpdate, StaleDataError)):
        return True
    return isinstance(exc, OperationalError) and getattr(
        exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _retry_job_id(event: InboundEvent) -> str:
    return make_job_id("event", event.id, "retry", event.attempts)


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

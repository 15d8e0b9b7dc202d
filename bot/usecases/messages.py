"""Processing stored inbound events: the use case that turns customer messages into work.

A drain calls `apply_pending` in its transaction: it takes a batch of pending events and
applies them in each customer's WhatsApp timestamp order, in one savepoint (one per event
when an event fails, so that only that one is set aside). Everything a
message changes (contact, message, task, audit, outbox, the event's own status) commits
together, so a crash loses nothing and a re-run is a no-op or a redo. An event that fails is
counted and handed to its own retry job (`bot.worker.entrypoints.retry_event`, scheduled by
the worker after the commit) after a growing delay; after `store.inbound.MAX_ATTEMPTS`
failures, or at once when its payload cannot be read, it is FAILED and listed by
`opsbot events failed`.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from bot.core import tunables
from bot.core.jobs import event_retry_job_id
from bot.usecases.changes import ChangeOutcome, apply_change
from bot.usecases.conversation import MessageOutcome, apply_message, apply_status_update
from bot.usecases.platform import record_platform_errors
from bot.whatsapp.parsing import Inbound, read_message, read_platform_errors, read_status
from bot.whatsapp.payloads import PayloadError
from rules import RulesConfig
from store.claims import hand_over
from store.errors import ConcurrentUpdate, describe_error
from store.inbound import (
    earlier_pending_events,
    get_event,
    lock_free_events,
    mark_processed,
    note_failure,
)
from store.models import EventStatus, InboundEvent

log = logging.getLogger(__name__)

_RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure


class EventOutcome(StrEnum):
    """What applying a stored event did, besides a customer message's `MessageOutcome`."""

    STATUS = "status"  # a delivery status of one of our messages
    UNKNOWN_STATUS = "status of an unknown message"
    PLATFORM_ERROR = "platform error"  # Meta's webhook-level `errors`: logged, kept, told
    SKIPPED = "skipped"  # neither a message nor a status
    ALREADY_DONE = "already done"  # not pending any more (another drain applied it)
    RETRYING = "retrying"  # failed; its retry job is scheduled
    FAILED = "failed"  # failed for good: listed by `opsbot events failed`
    MISSING = "missing"  # no event with this id


Outcome = MessageOutcome | ChangeOutcome | EventOutcome


class RetryLater(Exception):
    """The event cannot be applied yet (e.g. a status for a send not yet recorded)."""


@dataclass
class Applied:
    """What `apply_events` did: how many events it took, each outcome, and the events to
    retry later (handed to their retry jobs, which the caller enqueues after the commit)."""

    taken: int = 0
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    retries: list[InboundEvent] = field(default_factory=list)


def apply_pending(session: Session, *, config: RulesConfig, limit: int,
                  now: datetime) -> Applied:
    """Applies up to `limit` pending events that no job holds."""
    return apply_events(session, config=config, taken=lock_free_events(session, limit=limit),
                        now=now)


def apply_event(session: Session, *, config: RulesConfig, event_id: int,
                now: datetime) -> Applied:
    """Applies one event (after the same customer's earlier pending messages); its outcome
    is `outcomes.get(event_id, EventOutcome.MISSING)`."""
    event = get_event(session, event_id=event_id, for_update=True)
    return apply_events(session, config=config, taken=[event] if event else [], now=now)


def apply_events(session: Session, *, config: RulesConfig, taken: list[InboundEvent],
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
                applied.outcomes[event.id] = _apply_pending(session, config, event, now)
    except Exception as exc:  # the batch is rolled back; the careful pass finds the culprit
        session.info.clear()  # per-transaction caches may hold what was rolled back
        log.info("a batch of %d event(s) met %s; applying them one by one", len(events),
                 exc.__class__.__name__)
        applied.outcomes.clear()
        for event in events:
            applied.outcomes[event.id] = _process_one(session, config, event, now,
                                                      applied.retries)
    for event in applied.retries:
        hand_over(session, InboundEvent, [event.id], owner=event_retry_job_id(event.id,
                  event.attempts), now=now)
    return applied


def _customer_order(event: InboundEvent) -> tuple[datetime, int]:
    return event.occurred_at or event.received_at, event.id


def _apply_pending(session: Session, config: RulesConfig, event: InboundEvent,
                   now: datetime) -> Outcome:
    if event.status != EventStatus.PENDING:
        return EventOutcome.ALREADY_DONE
    return _apply(session, config, event, now)


def _process_one(session: Session, config: RulesConfig, event: InboundEvent, now: datetime,
                 retries: list[InboundEvent]) -> Outcome:
    conflicts = 0
    while True:
        try:
            with session.begin_nested():
                return _apply_pending(session, config, event, now)
        except PayloadError as exc:
            session.info.clear()  # per-transaction caches may hold what was rolled back
            note_failure(event, reason=f"cannot read the payload: {exc}", final=True)
            log.error("inbound event %s failed for good: %s", event.id, event.error)
            return EventOutcome.FAILED
        except Exception as exc:
            session.info.clear()
            if not _is_conflict(exc) or conflicts == tunables.CONFLICT_RETRIES:
                return _failed(event, exc, retries)
            # A task changed by an agent or a timer at the same moment, or a PostgreSQL
            # deadlock with another writer of the same task: redo this event.
            conflicts += 1
            log.info("inbound event %s met a concurrent update (%s); redoing it", event.id,
                     exc.__class__.__name__)


def _failed(event: InboundEvent, exc: Exception, retries: list[InboundEvent]) -> EventOutcome:
    if note_failure(event, reason=describe_error(exc)):
        log.error("inbound event %s failed for good: %s", event.id, event.error)
        return EventOutcome.FAILED
    level = logging.INFO if isinstance(exc, RetryLater) else logging.WARNING
    # A database error's traceback quotes the rows (customers' data): its one line is enough.
    traceback = not isinstance(exc, RetryLater | DBAPIError)
    log.log(level, "inbound event %s: %s (will retry)", event.id, event.error,
            exc_info=traceback)
    retries.append(event)
    return EventOutcome.RETRYING


def _is_conflict(exc: Exception) -> bool:
    if isinstance(exc, (ConcurrentUpdate, StaleDataError)):
        return True
    return isinstance(exc, OperationalError) and getattr(
        exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _apply(session: Session, config: RulesConfig, event: InboundEvent,
           now: datetime) -> Outcome:
    if event.kind == "message":
        message = read_message(event.raw_body, received_at=event.received_at)
        apply = apply_message if message.kind == Inbound.REQUEST else apply_change
        outcome = apply(session, config=config, message=message, now=now)
        mark_processed(event, now=now)
        return outcome
    if event.kind == "status":
        status = read_status(event.raw_body, received_at=event.received_at)
        found = apply_status_update(session, status=status, now=now)
        if not found and event.attempts < 2:
            # The status may have overtaken the send that records its wamid: try again later.
            raise RetryLater("no outbound message with this id yet")
        mark_processed(event, now=now, note=None if found else "no outbound message with this id")
        return EventOutcome.STATUS if found else EventOutcome.UNKNOWN_STATUS
    if event.kind == "error":
        summary = record_platform_errors(session, config=config,
                                         errors=read_platform_errors(event.raw_body), now=now)
        mark_processed(event, now=now, note=f"WhatsApp reported: {summary}")
        return EventOutcome.PLATFORM_ERROR
    mark_processed(event, now=now, note="neither a message nor a status: nothing to do")
    return EventOutcome.SKIPPED

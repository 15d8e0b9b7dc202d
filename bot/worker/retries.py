"""The per-row jobs that remain beside drains: an inbound event's retry and an outbox row's
own delivery. The use cases hand such rows to their job in the database (`claimed_by`);
these functions enqueue the jobs once that is committed. Nothing is lost when Redis is
down meanwhile: the sweeper frees the rows of a job that does not exist."""

import logging
from collections.abc import Sequence
from datetime import datetime

from redis.exceptions import RedisError

from bot.core.jobs import DELIVER, RETRY, RETRY_EVENT, Jobs, event_retry_job_id, outbox_job_id
from bot.core.services import Services
from bot.usecases.delivery import Delivered, DeliveryOutcome, Outlets, deliver_outbox
from bot.usecases.messages import EventOutcome, Outcome, apply_event
from store.models import InboundEvent
from store.types import utcnow

log = logging.getLogger(__name__)


def outlets_of(services: Services) -> Outlets:
    """What deliveries may send through in this process (the rules as they are now)."""
    return Outlets(agents=services.senders, whatsapp=services.whatsapp,
                   config=services.rules.current, media_links=services.media_links)


def schedule_event_retries(jobs: Jobs, events: Sequence[InboundEvent], now: datetime) -> None:
    """Enqueues the retry job of each event that failed, after its policy's wait."""
    for event in events:
        try:
            jobs.enqueue(RETRY_EVENT, event.id, job_id=event_retry_job_id(event.id, event.attempts),
                         at=now + RETRY.wait_before(event.attempts))
        except (RedisError, OSError) as exc:  # the sweeper frees the event once its job is gone
            log.warning("inbound event %s: cannot schedule its retry (%s)", event.id, exc)


def process_event(services: Services, event_id: int, *, now: datetime | None = None) -> Outcome:
    """Applies one event in a transaction of its own (after the same customer's earlier
    pending messages); when it fails again, schedules its next retry."""
    now = now or utcnow()
    with services.db.transaction() as session:
        applied = apply_event(session, config=services.rules.current, event_id=event_id,
                              now=now)
    schedule_event_retries(services.jobs, applied.retries, now)
    return applied.outcomes.get(event_id, EventOutcome.MISSING)


def enqueue_deliveries(jobs: Jobs, outbox_ids: Sequence[int], *,
                       at: datetime | None = None) -> None:
    """Enqueues the delivery job of each row (handed to it in the database)."""
    for outbox_id in outbox_ids:
        try:
            jobs.enqueue(DELIVER, outbox_id, job_id=outbox_job_id(outbox_id, at=at), at=at)
        except (RedisError, OSError) as exc:  # the sweeper frees the row once its job is gone
            log.warning("outbox %s: cannot enqueue its job (%s)", outbox_id, exc)


def deliver(services: Services, outbox_id: int) -> Delivered:
    """Delivers one row (its own job); a row rate limited for long gets its next job at the
    instant it may be sent. Raises TransientDeliveryError for RQ to retry the job."""
    delivered = deliver_outbox(services.db, outlets_of(services), outbox_id)
    if delivered.outcome is DeliveryOutcome.RESCHEDULED:
        enqueue_deliveries(services.jobs, [outbox_id], at=delivered.retry_at)
    return delivered

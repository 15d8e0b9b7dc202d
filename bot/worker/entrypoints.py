"""Every RQ job function, named by the `JobSpec`s of `bot.core.jobs`.

These are the only readers of the process's services: a worker installs them
(`install_services`) before it works; a job run elsewhere builds them from the environment
on first use. Each function calls a use case or a worker step and asks for a drain of what
it queued.
"""

import logging

from bot.core.bootstrap import build_services
from bot.core.services import Services
from bot.core.settings import Settings
from bot.usecases.digest import start_day
from bot.usecases.escalation import fire_timer as fire_timer_now
from bot.worker.cpu import stage
from bot.worker.drains import deliver_webhooks_for_job, drain_for_job, request_drain
from bot.worker.retries import deliver as deliver_row
from bot.worker.retries import process_event
from store.types import utcnow

log = logging.getLogger(__name__)

_current: Services | None = None


def install_services(services: Services | None) -> None:
    """Makes `services` the ones job functions use in this process (None forgets them)."""
    global _current
    _current = services


def current_services() -> Services:
    """This process's services, built from the environment on first use."""
    global _current
    if _current is None:
        _current = build_services(Settings(), migrate=False, for_worker=True)
    return _current


def drain() -> str:
    """Batches of pending work for up to a second (`bot.worker.drains`)."""
    return str(drain_for_job(current_services()))


def deliver(outbox_id: int) -> str:
    """One outbox row that a drain could not send (`bot.worker.retries.deliver`)."""
    with stage("delivery"):
        delivered = deliver_row(current_services(), outbox_id)
    log.info("outbox %s: %s", outbox_id, delivered)
    return str(delivered)


def retry_event(event_id: int) -> str:
    """One inbound event that failed, applied again; then a drain of what it queued."""
    services = current_services()
    with stage("processing"):
        outcome = process_event(services, event_id)
    request_drain(services)
    return outcome


def fire_timer(task_id: int, kind: str, generation: int, at_iso: str) -> str:
    """One SLA timer run as a job of the main queue: a timer whose retries were spent, once
    requeued from the failed jobs, or one a version before drains fired timers scheduled
    (`bot.worker.timers`); then a drain."""
    services = current_services()
    with stage("timers"), services.db.transaction() as session:
        outcome = fire_timer_now(session, config=services.rules.current, task_id=task_id,
                                 kind=kind, generation=generation, at_iso=at_iso, now=utcnow())
    request_drain(services)
    return outcome


def send_digest(agent_id: str, day: str) -> str:
    """One agent's working day starts: waiting tasks routed, her digest of `day`; then a
    drain."""
    services = current_services()
    with stage("timers"), services.db.transaction() as session:
        outcome = start_day(session, config=services.rules.current, agent_id=agent_id,
                            day=day, now=utcnow())
    request_drain(services)
    return outcome


def deliver_webhooks() -> str:
    """Due outgoing webhooks, for up to WEBHOOK_SECONDS (`bot.usecases.webhooks_out`)."""
    with stage("webhooks"):
        attempts = deliver_webhooks_for_job(current_services())
    return f"{attempts} webhook attempt(s)"

"""Operations, for supervisors and admins: the health of the database, Redis and each
channel that is on (from the outbox, without calling the remote APIs), inbound events and
background jobs that failed (retry, requeue: what `opsbot events` and `opsbot jobs` do), and
deliveries that failed (outbox rows, outgoing webhooks)."""

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from redis.exceptions import RedisError
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from sqlalchemy.exc import SQLAlchemyError

from bot.console.auth import Viewer, checked, require_overseer, services_of, signed_in
from bot.console.pages import redirect, render
from bot.core.jobs import FailedJob, list_failed_jobs, requeue_failed_job
from bot.core.services import Services
from bot.worker.drains import request_drain
from store.inbound import (
    DRAINED_PROVIDER,
    list_failed_events,
    list_unretryable_events,
    retry_events,
)
from store.operations import last_deliveries, list_failed_deliveries, list_failed_outbox

router = APIRouter()
Signed = Annotated[Viewer, Depends(signed_in)]
NOT_RETRIED = ("{count} event(s) stay failed: only WhatsApp events are processed again; an "
               "agent's command or button is not replayed later (the agent sends it again).")


@dataclass(frozen=True)
class Probe:
    """One dependency's health: `ok`, else what went wrong (the error's kind only: its text
    can name hosts and roles)."""

    name: str
    ok: bool
    problem: str = ""


def _probe(name: str, ping) -> Probe:
    try:
        ping()
    except (SQLAlchemyError, RedisError, OSError) as exc:
        return Probe(name, False, f"does not answer ({exc.__class__.__name__})")
    return Probe(name, True)


@router.get("/operations", name="operations_page")
def operations_page(request: Request, viewer: Signed, said: str = "",
                    failed: str = "") -> Response:
    require_overseer(viewer)
    services = services_of(request)
    database = _probe("Database", services.db.ping)
    redis = _probe("Redis", services.redis.ping)
    stored = _stored(services) if database.ok else {}
    return render(request, "operations.html", viewer=viewer, probes=(database, redis),
                  jobs=_failed_jobs(services) if redis.ok else None, said=said,
                  failed=failed, retryable=DRAINED_PROVIDER, **stored)


def _stored(services: Services) -> dict:
    """What the database tells: failed events and deliveries, and each channel's latest
    delivery."""
    with services.db.transaction(readonly=True) as session:
        found = {"events": list_failed_events(session),
                 "outbox": list_failed_outbox(session),
                 "deliveries": list_failed_deliveries(session),
                 "channels": last_deliveries(session, channels=_channels_on(services))}
        session.expunge_all()
        return found


def _channels_on(services: Services) -> list[str]:
    settings = services.settings
    return [name for name, on in (("whatsapp", settings.whatsapp_enabled),
                                  ("slack", settings.slack_enabled),
                                  ("telegram", settings.telegram_enabled)) if on]


def _failed_jobs(services: Services) -> list[FailedJob] | None:
    try:
        return list_failed_jobs(services.jobs)
    except (RedisError, OSError):
        return None  # Redis went away since it answered the ping: the page says so


@router.post("/operations/events/retry-all", name="events_retry_all")
async def events_retry_all(request: Request, viewer: Signed) -> Response:
    await checked(request, viewer)
    require_overseer(viewer)
    return _back_to_page(request, *_retry(services_of(request), None))


@router.post("/operations/events/{event_id}/retry", name="event_retry")
async def event_retry(request: Request, viewer: Signed, event_id: int) -> Response:
    await checked(request, viewer)
    require_overseer(viewer)
    return _back_to_page(request, *_retry(services_of(request), [event_id]))


def _retry(services: Services, event_ids: list[int] | None) -> tuple[bool, str]:
    """Sets failed events (these, or all) back to pending and asks for a drain, as `opsbot
    events retry` does; returns whether any was, and what to tell."""
    with services.db.transaction() as session:
        count = len(retry_events(session, event_ids=event_ids))
        kept = len(list_unretryable_events(session, event_ids=event_ids))
    request_drain(services)
    said = f"{count} event(s) queued again."
    if kept:
        said += " " + NOT_RETRIED.format(count=kept)
    return bool(count) or event_ids is None, said


@router.post("/operations/jobs/{job_id}/requeue", name="job_requeue")
async def job_requeue(request: Request, viewer: Signed, job_id: str) -> Response:
    await checked(request, viewer)
    require_overseer(viewer)
    try:
        requeue_failed_job(services_of(request).jobs, job_id=job_id)
    except (NoSuchJobError, InvalidJobOperation):
        return _back_to_page(request, False, f"Job {job_id} is not among the failed jobs.")
    except (RedisError, OSError):
        return _back_to_page(request, False, "Redis does not answer: nothing was requeued.")
    return _back_to_page(request, True, f"Job {job_id} is back on the queue.")


def _back_to_page(request: Request, ok: bool, sentence: str) -> Response:
    key = "said" if ok else "failed"
    return redirect(request.url_for("operations_page").path + f"?{key}={quote(sentence)}")

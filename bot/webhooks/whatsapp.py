"""`GET|POST /webhooks/whatsapp`: the verification challenge and durable intake.

POST: size limit (413), `X-Hub-Signature-256` over the raw body (403, nothing stored), then
the body's items are committed (unique per wamid, statuses per wamid:status) before the 200.
A signed body we cannot read is stored as one FAILED event with its reason, and answered 200
so that Meta stops redelivering it. Rows the database cannot store get 503: Meta retries.
"""

import hmac
import logging
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from pywa.utils import webhook_updates_validator

from bot.core import tunables
from bot.core.services import Services
from bot.core.settings import reveal
from bot.webhooks.body import BodyRefused, read_limited, refusal
from bot.webhooks.intake import IntakeUnavailable, IntakeWriter
from bot.whatsapp.payloads import EventItem, PayloadError, body_digest, split_body
from bot.worker.drains import request_drain
from store.models import EventStatus
from store.types import utcnow

PATH = "/webhooks/whatsapp"
PROVIDER = "whatsapp"
CANNOT_STORE = b'{"error":"cannot store right now; retry"}'
log = logging.getLogger(__name__)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    services: Services = app.state.services

    writer = IntakeWriter(services.db, after_commit=lambda: request_drain(services),
                          max_batch=tunables.INTAKE_MAX_BATCH)
    writer.start()
    app.state.whatsapp_intake = writer
    app.state.whatsapp_phone_ids = frozenset(services.settings.whatsapp_phone_ids)
    try:
        yield
    finally:
        await writer.stop()


def build_router() -> APIRouter:
    """`GET /webhooks/whatsapp` and the intake writer, which starts and stops with the app.
    `POST /webhooks/whatsapp` is answered by `ReceiveShortcut`, which the app adds as a
    middleware."""
    router = APIRouter(lifespan=_lifespan)
    router.add_api_route(PATH, verify, methods=["GET"])
    return router


class ReceiveShortcut:
    """Answers `POST /webhooks/whatsapp` before FastAPI's routing and request machinery.

    That machinery is about half of the per-request CPU of this hot path; skipping it is what
    lets one process accept thousands of messages per second.
    """

    def __init__(self, app) -> None:
        self.app = app
        self.endpoint = ReceiveEndpoint()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST":
            await self.endpoint(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def verify(request: Request) -> Response:
    """Meta's subscription check: echo `hub.challenge` when the verify token matches."""
    settings = request.app.state.services.settings
    params = request.query_params
    expected = reveal(settings.whatsapp_verify_token)
    if params.get("hub.mode") == "subscribe" and expected and _same(
        params.get("hub.verify_token", ""), expected
    ):
        return PlainTextResponse(params.get("hub.challenge", ""))
    return PlainTextResponse("verification failed: wrong hub.verify_token", status_code=403)


class ReceiveEndpoint:
    """POST: 413 / 403 / store-then-200 (503 when the rows cannot be stored), as a raw ASGI
    app."""

    async def __call__(self, scope, receive, send) -> None:
        app = scope["app"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            raw = await read_limited(headers, receive, tunables.WHATSAPP_MAX_BODY)
        except BodyRefused as exc:  # a client that is gone gets nothing: Meta redelivers
            await refusal(exc)(scope, receive, send)
            return
        secret = reveal(app.state.services.settings.whatsapp_app_secret)
        if not signature_ok(raw, headers.get("x-hub-signature-256"), secret):
            await _answer(send, 403, b'{"error":"missing or invalid X-Hub-Signature-256"}')
            return
        rows = event_rows(raw, phone_ids=app.state.whatsapp_phone_ids)
        if await _stored(app.state.whatsapp_intake, rows):
            await _answer(send, 200, b'{"stored":%d}' % len(rows))
        else:  # Meta delivers again later; a copy that was stored is ignored by its id
            await _answer(send, 503, CANNOT_STORE)


async def _stored(writer: IntakeWriter, rows: list[dict]) -> bool:
    """Whether `rows` were committed; a failure is logged (its kind only: a database error's
    text carries SQL parameters) and never escapes as a 500."""
    try:
        await writer.store(rows)
    except IntakeUnavailable:
        log.warning("intake: a webhook was answered 503 (the database could not store it)")
        return False
    except Exception as exc:  # any other database error: the same answer, louder
        log.error("intake: a webhook was answered 503 (%s)", exc.__class__.__name__)
        return False
    return True


async def _answer(send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def signature_ok(raw: bytes, header: str | None, app_secret: str | None) -> bool:
    """pywa's HMAC-SHA256 check (constant time); fails closed without a secret or header."""
    if not app_secret or not header or not header.isascii() or not header.startswith("sha256="):
        return False
    return webhook_updates_validator(app_secret, raw, header)


def event_rows(raw: bytes, *, phone_ids: Collection[str] = ()) -> list[dict]:
    """The inbound_events rows for a signed body: one per item (an item that cannot be kept
    as it is, or that was sent to a number not in `phone_ids`, is stored FAILED with its
    reason), or one FAILED row for a body that is not a WhatsApp body."""
    received_at = utcnow()
    try:
        items = split_body(raw, received_at=received_at, phone_ids=phone_ids)
    except PayloadError as exc:
        items = [EventItem(body_digest(raw), "unreadable", None, None, raw, str(exc))]
    return [_row(item, received_at) for item in items]


def _row(item: EventItem, received_at: datetime) -> dict:
    return {
        "provider": PROVIDER,
        "provider_event_id": item.provider_event_id,
        "kind": item.kind,
        "contact_key": item.contact_key,
        "occurred_at": item.occurred_at,
        "raw_body": item.body,
        "received_at": received_at,
        "status": EventStatus.FAILED if item.error else EventStatus.PENDING,
        "error": item.error,
    }


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())

"""`GET|POST /webhooks/whatsapp`: the verification challenge and durable intake.

POST: size limit (413), `X-Hub-Signature-256` over the raw body (403, nothing stored), then
the body's items are committed (unique per wamid, statuses per wamid:status) before the 200.
A signed body we cannot read is stored as one FAILED event with its reason, and answered 200
so that Meta stops redelivering it.
"""

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from pywa.utils import webhook_updates_validator

from bot.core import tunables
from bot.core.services import Services
from bot.webhooks.intake import IntakeWriter
from bot.whatsapp.payloads import EventItem, PayloadError, body_digest, split_body
from bot.worker.drains import request_drain
from store.models import EventStatus

PATH = "/webhooks/whatsapp"
PROVIDER = "whatsapp"


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    services: Services = app.state.services

    writer = IntakeWriter(services.db, after_commit=lambda: request_drain(services),
                          max_batch=tunables.INTAKE_MAX_BATCH)
    writer.start()
    app.state.whatsapp_intake = writer
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
    expected = settings.whatsapp_verify_token
    if params.get("hub.mode") == "subscribe" and expected and _same(
        params.get("hub.verify_token", ""), expected
    ):
        return PlainTextResponse(params.get("hub.challenge", ""))
    return PlainTextResponse("verification failed: wrong hub.verify_token", status_code=403)


class ReceiveEndpoint:
    """POST: 413 / 403 / store-then-200, as a raw ASGI app."""

    async def __call__(self, scope, receive, send) -> None:
        app = scope["app"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            raw = await read_limited(headers, receive, tunables.WHATSAPP_MAX_BODY)
        except BodyTooLarge:
            await _answer(send, 413, b'{"error":"body larger than 3 MB"}')
            return
        except ClientGone:  # Meta redelivers what it did not get an answer for
            return
        secret = app.state.services.settings.whatsapp_app_secret
        if not signature_ok(raw, headers.get("x-hub-signature-256"), secret):
            await _answer(send, 403, b'{"error":"missing or invalid X-Hub-Signature-256"}')
            return
        rows = event_rows(raw)
        await app.state.whatsapp_intake.store(rows)
        await _answer(send, 200, b'{"stored":%d}' % len(rows))


async def read_limited(headers: dict[str, str], receive, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes whatever Content-Length says."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _answer(send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def signature_ok(raw: bytes, header: str | None, app_secret: str | None) -> bool:
    """pywa's HMAC-SHA256 check (constant time); fails closed without a secret or header."""
    if not app_secret or not header or not header.startswith("sha256="):
        return False
    return webhook_updates_validator(app_secret, raw, header)


def event_rows(raw: bytes) -> list[dict]:
    """The inbound_events rows for a signed body: one per item, or one failed row."""
    try:
        items = split_body(raw)
    except PayloadError as exc:
        return [_row(EventItem(body_digest(raw), "unreadable", None, None, raw),
                     status=EventStatus.FAILED, error=str(exc))]
    return [_row(item) for item in items]


def _row(item: EventItem, *, status: str = EventStatus.PENDING, error: str | None = None):
    return {
        "provider": PROVIDER,
        "provider_event_id": item.provider_event_id[:300],
        "kind": item.kind,
        "contact_key": item.contact_key,
        "occurred_at": item.occurred_at,
        "raw_body": item.body,
        "status": status,
        "error": error,
    }


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())

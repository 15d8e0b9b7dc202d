"""`GET /media/{token}`: the customer's media behind a card's signed, expiring link.

The token (bot/core/media_links.py) names an inbound message; its media is downloaded through
the Graph API and passed on, never stored or cached. Expired 410, not ours 403, no such
message or no media 404, the Graph API failing 502, the database 503: each with a sentence,
never a traceback.
"""

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from bot.core.media_links import MediaLinkExpired, MediaLinkInvalid
from bot.core.services import Services
from store.messages import find_inbound_message

log = logging.getLogger(__name__)

EXPIRED = ("this link expired: open the media in the task's WhatsApp conversation, or ask "
           "for the task again so that a new card links it")
INVALID = "this link is not valid: open it from the task's card as it was sent"
NOT_FOUND = "no media here: the message is gone, or it had none"
UNREACHABLE = "WhatsApp did not hand over the media: try again in a minute"
BUSY = "opsbot cannot read its database right now: try again in a minute"
OFF = "media links are off: set PUBLIC_URL and the WhatsApp settings"


@dataclass(frozen=True)
class _Media:
    media_id: str
    filename: str | None


def build_router() -> APIRouter:
    router = APIRouter()
    router.add_api_route("/media/{token}", serve_media, methods=["GET"])
    return router


async def serve_media(token: str, request: Request) -> Response:
    services: Services = request.app.state.services
    if services.media_links is None or services.whatsapp is None:
        return _refusal(404, OFF)
    try:
        message_id = services.media_links.message_id_of(token)
    except MediaLinkExpired:
        return _refusal(410, EXPIRED)
    except MediaLinkInvalid:
        return _refusal(403, INVALID)
    try:
        media = await asyncio.to_thread(_media_of, services, message_id)
    except SQLAlchemyError as exc:
        log.warning("media of message %s: the database failed (%s)", message_id,
                    exc.__class__.__name__)
        return _refusal(503, BUSY)
    if media is None:
        return _refusal(404, NOT_FOUND)
    try:
        content, mime = await asyncio.to_thread(services.whatsapp.download_media, media.media_id)
    except Exception as exc:  # the Graph API or the network: the agent may try again
        log.warning("media of message %s: download failed (%s)", message_id,
                    exc.__class__.__name__)
        return _refusal(502, UNREACHABLE)
    mime = mime or "application/octet-stream"
    return Response(content, media_type=mime,
                    headers={"Content-Disposition": _disposition(media.filename, mime),
                             "Cache-Control": "private, no-store",
                             # a customer's file must never run as a page of ours
                             "X-Content-Type-Options": "nosniff",
                             "Content-Security-Policy": "sandbox; default-src 'none'"})


def _media_of(services: Services, message_id: int) -> _Media | None:
    with services.db.transaction(readonly=True) as session:
        message = find_inbound_message(session, message_id=message_id)
        if message is None or not message.media_id:
            return None
        filename = (message.payload or {}).get("filename")
        return _Media(message.media_id, str(filename) if filename else None)


_SHOWN_INLINE = ("image/", "audio/", "video/", "application/pdf")


def _disposition(filename: str | None, mime: str) -> str:
    """`inline` for pictures, sound, video and PDF, else `attachment` (a customer's HTML or
    SVG is downloaded, not opened); with the file name when the customer sent one (RFC 6266:
    an ASCII fallback and the UTF-8 name)."""
    kind = "inline" if mime.startswith(_SHOWN_INLINE) and mime != "image/svg+xml" else (
        "attachment")
    if not filename:
        return kind
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _refusal(status: int, sentence: str) -> PlainTextResponse:
    return PlainTextResponse(sentence, status_code=status,
                             headers={"Cache-Control": "private, no-store"})

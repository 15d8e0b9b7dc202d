"""A local stand-in for the WhatsApp Cloud API (Graph) as pywa 4.5 calls it.

Answers ``POST /v{version}/{phone_id}/messages`` (any message type, mark-as-read, typing),
``POST /v{version}/{phone_id}/media`` (upload), ``GET /v{version}/{media_id}`` (media URL
info) and ``GET /media/{media_id}`` (the download URL it hands out). Anything else gets a
Graph-style 400.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
import uuid
from dataclasses import dataclass

from pywa import WhatsApp

from bot.whatsapp.graph_transport import GRAPH_ORIGIN, pywa_async_http_client, pywa_http_client
from sandbox.server import FakeServer, Recorded, Reply

__all__ = ["GRAPH_ORIGIN", "FakeGraph", "Media", "pywa_async_http_client", "pywa_http_client"]

_VERSIONED = re.compile(r"^/v\d+(?:\.\d+)?/(?P<rest>.+)$")
_DOWNLOAD = re.compile(r"^/media/(?P<media_id>[^/]+)$")
_GRAPH_ERRORS = {
    400: (100, "(#100) Invalid parameter"),
    401: (190, "Invalid OAuth access token - Cannot parse access token"),
    403: (200, "(#200) Permissions error"),
    429: (130429, "(#130429) Rate limit hit"),
}


@dataclass(frozen=True, slots=True)
class Media:
    """Bytes served for one media id."""

    content: bytes
    mime_type: str = "image/jpeg"


class FakeGraph(FakeServer):
    """Fake Graph API. ``token`` (optional) makes other bearer tokens fail with code 190.

    Media ids not added with ``add_media`` still resolve (to placeholder bytes), so tests can
    invent ids for inbound media.
    """

    def __init__(self, *, token: str | None = None, delay: float = 0.0) -> None:
        super().__init__(delay=delay)
        self.token = token
        self._media: dict[str, Media] = {}
        self._ids = itertools.count(1)
        self._instance = uuid.uuid4().hex[:8].upper()
        self._lock = threading.Lock()

    # test helpers --------------------------------------------------------------------------

    def add_media(self, media_id: str, content: bytes, mime_type: str = "image/jpeg") -> None:
        """Serve ``content`` for ``media_id``."""
        with self._lock:
            self._media[media_id] = Media(content, mime_type)

    def media_url(self, media_id: str) -> str:
        """The download URL the fake hands out for ``media_id``."""
        return f"{self.url}/media/{media_id}"

    def sent_messages(self) -> list[dict]:
        """JSON bodies of successfully sent messages (not mark-as-read or typing)."""
        return [
            r.json
            for r in self.calls("messages")
            if r.method == "POST" and r.status == 200 and r.json and "type" in r.json
        ]

    def client(
        self, phone_id: str = "1000000001", token: str = "TEST-TOKEN", **kwargs: object
    ) -> WhatsApp:
        """A real ``pywa.WhatsApp`` pointed at this fake."""
        return WhatsApp(
            phone_id=phone_id, token=token, session=pywa_http_client(self.url), **kwargs
        )

    # routing -------------------------------------------------------------------------------

    def route(self, rec: Recorded) -> Reply:
        download = _DOWNLOAD.match(rec.path)
        if download and rec.method == "GET":
            return self._download(download["media_id"])
        if not self._authorized(rec):
            return self.error_reply(401, None, None)
        versioned = _VERSIONED.match(rec.path)
        parts = versioned["rest"].strip("/").split("/") if versioned else []
        if rec.method == "POST" and len(parts) == 2 and parts[1] == "messages":
            return self._messages(rec)
        if rec.method == "POST" and len(parts) == 2 and parts[1] == "media":
            return Reply(200, {"id": self._upload(rec)})
        if rec.method == "GET" and len(parts) == 1:
            return Reply(200, self._media_info(parts[0]))
        if rec.method == "DELETE" and len(parts) == 1:
            return Reply(200, {"success": True})
        return self._graph_error(400, f"Unsupported {rec.method} request to {rec.path}", 100)

    def error_reply(self, status: int, retry_after: int | None, body: dict | None) -> Reply:
        if body is not None:
            return Reply(status, body)
        code, message = _GRAPH_ERRORS.get(status, (1, "An unknown error has occurred."))
        return self._graph_error(status, message, code)

    def _graph_error(self, status: int, message: str, code: int) -> Reply:
        error = {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": f"FAKE{next(self._ids):08d}",
        }
        return Reply(status, {"error": error})

    def _authorized(self, rec: Recorded) -> bool:
        if self.token is None:
            return True
        return rec.headers.get("authorization") == f"Bearer {self.token}"

    def _messages(self, rec: Recorded) -> Reply:
        body = rec.json or {}
        if body.get("status") == "read":  # mark-as-read, with or without typing
            return Reply(200, {"success": True})
        if not (body.get("to") or body.get("recipient")):
            return self._graph_error(400, "(#100) The parameter to is required.", 100)
        problem = interactive_problem(body) if body.get("type") == "interactive" else None
        if problem:
            return self._graph_error(400, f"(#131009) Parameter value is not valid: {problem}",
                                     131009)
        message = {"id": self._wamid()}
        if body.get("type") == "template":
            message["message_status"] = "accepted"
        return Reply(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [_contact(body)],
                "messages": [message],
            },
        )

    def _wamid(self) -> str:
        return f"wamid.FAKE{self._instance}{next(self._ids):010d}"

    def _upload(self, rec: Recorded) -> str:
        media_id = f"{9_000_000_000 + next(self._ids)}"
        content = next(iter(rec.files.values()), b"")
        mime = (rec.form or {}).get("type", "application/octet-stream")
        self.add_media(media_id, content, mime)
        return media_id

    def _lookup(self, media_id: str) -> Media:
        with self._lock:
            found = self._media.get(media_id)
        return found or Media(f"fake media {media_id}".encode())

    def _media_info(self, media_id: str) -> dict:
        media = self._lookup(media_id)
        return {
            "messaging_product": "whatsapp",
            "url": self.media_url(media_id),
            "mime_type": media.mime_type,
            "sha256": _sha256(media.content),
            "file_size": len(media.content),
            "id": media_id,
        }

    def _download(self, media_id: str) -> Reply:
        media = self._lookup(media_id)
        return Reply(200, media.content, content_type=media.mime_type)


# WhatsApp's limits on interactive messages, as the Cloud API enforces them.
LIMITS = {"buttons": 3, "button_title": 20, "button_id": 256, "rows": 10, "row_title": 24,
          "row_id": 200, "list_button": 20, "body": 1024}


def interactive_problem(body: dict) -> str | None:
    """What the real Graph API would refuse in an interactive message (reply buttons or a
    list), or None when it is within WhatsApp's limits."""
    interactive = body.get("interactive") or {}
    action = interactive.get("action") or {}
    if len((interactive.get("body") or {}).get("text") or "") > LIMITS["body"]:
        return "the body text is longer than 1024 characters"
    if interactive.get("type") == "button":
        replies = [button.get("reply") or {} for button in action.get("buttons") or []]
        return _choices_problem(replies, "buttons", "button_title", "button_id")
    if interactive.get("type") == "list":
        if not 0 < len(action.get("button") or "") <= LIMITS["list_button"]:
            return "the list's button title must have 1 to 20 characters"
        rows = [row for section in action.get("sections") or [] for row in section.get("rows")]
        return _choices_problem(rows, "rows", "row_title", "row_id")
    return None


def _choices_problem(choices: list[dict], count: str, title: str, ident: str) -> str | None:
    if not 0 < len(choices) <= LIMITS[count]:
        return f"{len(choices)} {count} (1 to {LIMITS[count]} allowed)"
    for choice in choices:
        if not 0 < len(choice.get("title") or "") <= LIMITS[title]:
            return f"the title {choice.get('title')!r} must have 1 to {LIMITS[title]} characters"
        if not 0 < len(choice.get("id") or "") <= LIMITS[ident]:
            return f"the id {choice.get('id')!r} must have 1 to {LIMITS[ident]} characters"
    if len({choice["id"] for choice in choices}) != len(choices):
        return "two choices have the same id"
    return None


def _contact(body: dict) -> dict:
    if body.get("to"):
        return {"input": str(body["to"]), "wa_id": str(body["to"]).lstrip("+")}
    return {"input": str(body["recipient"]), "user_id": str(body["recipient"])}


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()

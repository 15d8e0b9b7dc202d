"""The one bounded body reader of every webhook.

A request body is read from the ASGI `receive` channel, never with `await request.body()`:
a Content-Length above the limit is refused before a byte is read, and a body that grows
past the limit while it streams (chunked, or a lying Content-Length) is refused at once.
The refusal closes the connection, so the server reads nothing more of it.
"""

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Receive = Callable[[], Awaitable[dict[str, Any]]]
MB = 1024 * 1024


class BodyRefused(Exception):
    """The body was not read whole; `refusal(exc)` is the answer."""


class BodyTooLarge(BodyRefused):
    """The body is (or says it is) larger than `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"body larger than {limit / MB:g} MB")


class ClientGone(BodyRefused):
    """The client disconnected before the body was complete."""


async def read_limited(headers: Mapping[str, str], receive: Receive, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes whatever Content-Length says.

    `headers` maps lower-case names to values. Raises BodyTooLarge or ClientGone.
    """
    if _says_more(headers.get("content-length", ""), limit):
        raise BodyTooLarge(limit)
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _says_more(declared: str, limit: int) -> bool:
    """Whether a Content-Length value declares more than `limit` bytes. A value that is not
    ASCII digits declares nothing (the server checks it); a long one is not converted (Python
    refuses to read integers of more than 4,300 digits)."""
    if not (declared.isascii() and declared.isdigit()):
        return False
    digits = declared.lstrip("0") or "0"
    return len(digits) > len(str(limit)) or int(digits) > limit


async def read_body(request: Request, limit: int) -> bytes:
    """`read_limited` for a Starlette request (its body must not have been read yet)."""
    return await read_limited(request.headers, request.receive, limit)


def refusal(exc: BodyRefused) -> Response:
    """The answer to a body that was not read: 413 that closes the connection, or nothing
    (400, never sent) to a client that is gone. A Response is an ASGI app, so raw ASGI
    endpoints send it with `await refusal(exc)(scope, receive, send)`."""
    if isinstance(exc, BodyTooLarge):
        return JSONResponse({"error": str(exc)}, status_code=413,
                            headers={"connection": "close"})
    return Response(status_code=400)

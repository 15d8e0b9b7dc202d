"""The bounded reader on its own, fed ASGI messages (the HTTP attacks are in test_body.py)."""

import asyncio

import pytest

from bot.webhooks.body import BodyTooLarge, ClientGone, read_limited, refusal


def feed(*messages: dict):
    queue = list(messages)

    async def receive() -> dict:
        return queue.pop(0)

    return receive


def chunk(body: bytes, more: bool = False) -> dict:
    return {"type": "http.request", "body": body, "more_body": more}


def read(headers: dict[str, str], receive, limit: int = 10) -> bytes:
    return asyncio.run(read_limited(headers, receive, limit))


@pytest.mark.parametrize(("headers", "messages", "expected"), [
    ({}, [chunk(b"0123456789")], b"0123456789"),  # exactly the limit
    ({}, [chunk(b"01234", True), chunk(b"56789")], b"0123456789"),
    ({"content-length": "10"}, [chunk(b"abc")], b"abc"),  # a short body is the server's care
    ({"content-length": "²"}, [chunk(b"abc")], b"abc"),  # not ASCII digits: not a length
    ({"content-length": "-1"}, [chunk(b"abc")], b"abc"),
])
def test_a_body_within_the_limit_is_read(headers, messages, expected):
    assert read(headers, feed(*messages)) == expected


@pytest.mark.parametrize(("headers", "messages"), [
    ({"content-length": "11"}, []),  # refused before a message is received
    ({"content-length": "9" * 5000}, []),  # longer than int() reads by default
    ({}, [chunk(b"012345", True), chunk(b"67890", True)]),  # the second chunk crosses it
    ({"content-length": "3"}, [chunk(b"01234567890")]),  # a Content-Length that lies
])
def test_a_body_over_the_limit_is_refused(headers, messages):
    with pytest.raises(BodyTooLarge) as refused:
        read(headers, feed(*messages))
    assert refused.value.limit == 10


def test_a_client_that_leaves_is_gone():
    with pytest.raises(ClientGone):
        read({}, feed(chunk(b"01", True), {"type": "http.disconnect"}))


def test_the_refusal_of_a_large_body_closes_the_connection():
    response = refusal(BodyTooLarge(1024 * 1024))
    assert response.status_code == 413
    assert response.body == b'{"error":"body larger than 1 MB"}'
    assert response.headers["connection"] == "close"

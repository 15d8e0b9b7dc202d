"""The URL-rewriting httpx transport that points pywa at another Graph base URL."""

import asyncio

import httpx
import pytest

from bot.whatsapp.graph_transport import AsyncOriginRewriteTransport, OriginRewriteTransport


def _seen(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"url": str(request.url), "host": request.headers["host"]})


@pytest.mark.parametrize(
    ("target", "sent", "expected"),
    [
        (
            "http://127.0.0.1:9",
            "https://graph.facebook.com/v26.0/1/messages?a=b",
            "http://127.0.0.1:9/v26.0/1/messages?a=b",
        ),
        (
            "http://127.0.0.1:9/graph/",
            "https://graph.facebook.com/v26.0/77",
            "http://127.0.0.1:9/graph/v26.0/77",
        ),
        ("http://127.0.0.1:9", "http://127.0.0.1:9/media/1", "http://127.0.0.1:9/media/1"),
        ("http://127.0.0.1:9", "https://example.org/x", "https://example.org/x"),
    ],
)
def test_rewrites_only_the_graph_origin(target, sent, expected):
    transport = OriginRewriteTransport(
        "https://graph.facebook.com", target, inner=httpx.MockTransport(_seen)
    )
    with httpx.Client(transport=transport) as client:
        body = client.get(sent).json()
    assert body["url"] == expected
    assert body["host"] == httpx.URL(expected).netloc.decode()


def test_async_transport_rewrites_too():
    transport = AsyncOriginRewriteTransport(
        "https://graph.facebook.com", "http://127.0.0.1:9", inner=httpx.MockTransport(_seen)
    )

    async def call():
        async with httpx.AsyncClient(transport=transport) as client:
            return (await client.get("https://graph.facebook.com/v26.0/5")).json()

    assert asyncio.run(call())["url"] == "http://127.0.0.1:9/v26.0/5"

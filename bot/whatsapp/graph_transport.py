"""httpx transports that send one origin's requests to another base URL.

pywa 4.5 has no base-URL option: ``GraphAPI.__init__`` overwrites ``session.base_url`` with
``https://graph.facebook.com/v{version}``. So the rewrite has to happen below the client, in
the transport. opsbot uses ``pywa_http_client`` to honour ``WHATSAPP_API_BASE_URL``.
"""

from __future__ import annotations

import httpx

GRAPH_ORIGIN = "https://graph.facebook.com"


class _Rewrite:
    """Maps URLs under ``source`` (an origin) to the same path under ``target``."""

    def __init__(self, source: str, target: str) -> None:
        self.source = httpx.URL(source)
        self.target = httpx.URL(target)

    def apply(self, request: httpx.Request) -> None:
        url = request.url
        if (url.scheme, url.host, url.port) != (
            self.source.scheme,
            self.source.host,
            self.source.port,
        ):
            return
        prefix = self.target.path.rstrip("/")
        request.url = url.copy_with(
            scheme=self.target.scheme,
            host=self.target.host,
            port=self.target.port,
            path=prefix + url.path,
        )
        request.headers["Host"] = request.url.netloc.decode("ascii")


class OriginRewriteTransport(httpx.BaseTransport):
    """Sync transport: requests to ``source`` go to ``target``; others pass through unchanged."""

    def __init__(self, source: str, target: str, inner: httpx.BaseTransport | None = None) -> None:
        self._rewrite = _Rewrite(source, target)
        self._inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._rewrite.apply(request)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class AsyncOriginRewriteTransport(httpx.AsyncBaseTransport):
    """Async twin of ``OriginRewriteTransport`` for ``pywa_async``."""

    def __init__(
        self, source: str, target: str, inner: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._rewrite = _Rewrite(source, target)
        self._inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._rewrite.apply(request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def pywa_http_client(base_url: str, *, timeout: float = 10.0) -> httpx.Client:
    """A fresh ``httpx.Client`` for ``pywa.WhatsApp(session=...)`` that sends Graph API calls
    to ``base_url`` (e.g. ``http://127.0.0.1:54321``) instead of graph.facebook.com.

    Use one per WhatsApp instance: pywa refuses a session that already has Authorization.
    """
    transport = OriginRewriteTransport(GRAPH_ORIGIN, base_url)
    return httpx.Client(transport=transport, timeout=timeout)


def pywa_async_http_client(base_url: str, *, timeout: float = 10.0) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` counterpart for ``pywa_async.WhatsApp(session=...)``."""
    transport = AsyncOriginRewriteTransport(GRAPH_ORIGIN, base_url)
    return httpx.AsyncClient(transport=transport, timeout=timeout)

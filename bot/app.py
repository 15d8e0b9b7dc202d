"""The ASGI app: every webhook and the health checks, composed by `create_app(settings)`.

The path of one customer message: `webhooks/whatsapp.py` (verify, store, 200) -> a drain in
the worker (`worker/drains.py`) -> `usecases/messages.py` -> `usecases/conversation.py`
(rules, task, routing) -> `usecases/delivery.py` -> the agent's card on Slack or Telegram.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bot import api, console
from bot.core import tunables
from bot.core.bootstrap import build_services
from bot.core.services import Services
from bot.core.settings import Settings
from bot.webhooks import media, slack, telegram, whatsapp

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    """The web app for `settings`; `services` may be passed in (tests), else built at startup.
    Only the webhooks of the channels that are on are served."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = services is None
        app.state.services = services or build_services(settings)
        try:
            yield
        finally:
            if own:
                app.state.services.close()

    # No /docs, /redoc or /openapi.json: the webhooks are for Meta, Slack and Telegram only.
    app = FastAPI(title="opsbot", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_api_route("/readyz", Readiness().answer, methods=["GET"])
    if settings.whatsapp_enabled:
        app.include_router(whatsapp.build_router())
        # POST /webhooks/whatsapp is answered before FastAPI's routing and request machinery,
        # about half of the CPU of this hot path (see `whatsapp.ReceiveShortcut`).
        app.add_middleware(whatsapp.ReceiveShortcut)
    if settings.media_links_enabled:
        app.include_router(media.build_router())
    if settings.slack_enabled:
        app.include_router(slack.build_router(settings))
    if settings.telegram_enabled:
        app.include_router(telegram.build_router())
    app.mount(console.PREFIX, console.build_app(lambda: app.state.services))
    app.mount(api.PREFIX, api.build_app(lambda: app.state.services))
    api.problems.install_outside(app, api.PREFIX)
    return app


async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


class Readiness:
    """`GET /readyz`: 503 unless the database and Redis both answer within
    READY_PROBE_TIMEOUT. Says which one does not ("down" or "timeout"), never with the error's
    text, which can name hosts, ports and roles."""

    def __init__(self) -> None:
        self.database, self.redis = Probe(), Probe()

    async def answer(self, request: Request) -> JSONResponse:
        services: Services = request.app.state.services
        timeout = tunables.READY_PROBE_TIMEOUT
        database, redis = await asyncio.gather(self.database.check(services.db.ping, timeout),
                                               self.redis.check(services.redis.ping, timeout))
        ready = database == redis == "ok"
        if not ready:
            log.warning("not ready: database %s, redis %s", database, redis)
        return JSONResponse({"ready": ready, "database": database, "redis": redis},
                            status_code=200 if ready else 503)


class Probe:
    """One dependency's ping, in a thread so that a hanging one never blocks the event loop.

    At most one ping runs at a time: while one hangs (until its client's own timeout), every
    check waits on that same ping rather than tying up another thread.
    """

    def __init__(self) -> None:
        self._running: asyncio.Future | None = None

    async def check(self, ping: Callable[[], object], timeout: float) -> str:
        """"ok", "down" (the ping raised) or "timeout" (no answer within `timeout` s)."""
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(asyncio.to_thread(ping))
        try:
            await asyncio.wait_for(asyncio.shield(self._running), timeout)
        except TimeoutError:
            return "timeout"
        except Exception:  # any failure means "down"; its text may name hosts and roles
            return "down"
        return "ok"

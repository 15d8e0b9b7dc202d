"""The ASGI app: every webhook and the health checks, composed by `create_app(settings)`.

The path of one customer message: `webhooks/whatsapp.py` (verify, store, 200) -> a drain in
the worker (`worker/drains.py`) -> `usecases/messages.py` -> `usecases/conversation.py`
(rules, task, routing) -> `usecases/delivery.py` -> the agent's card on Slack or Telegram.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bot.core.bootstrap import build_services
from bot.core.services import Services
from bot.core.settings import Settings
from bot.webhooks import slack, telegram, whatsapp


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

    app = FastAPI(title="opsbot", lifespan=lifespan)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_api_route("/readyz", readyz, methods=["GET"])
    if settings.whatsapp_enabled:
        app.include_router(whatsapp.build_router())
        # POST /webhooks/whatsapp is answered before FastAPI's routing and request machinery,
        # about half of the CPU of this hot path (see `whatsapp.ReceiveShortcut`).
        app.add_middleware(whatsapp.ReceiveShortcut)
    if settings.slack_enabled:
        app.include_router(slack.build_router(settings))
    if settings.telegram_enabled:
        app.include_router(telegram.build_router())
    return app


async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


async def readyz(request: Request) -> JSONResponse:
    """503 unless both the database and Redis answer; says which one does not."""
    services: Services = request.app.state.services
    checks = {"database": _check(services.db.ping), "redis": _check(services.redis.ping)}
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)


def _check(probe) -> str:
    try:
        probe()
    except Exception as exc:  # any failure means "not ready"; the text says why
        return f"error: {exc.__class__.__name__}: {exc}"
    return "ok"

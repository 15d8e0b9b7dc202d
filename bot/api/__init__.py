"""The integration REST API under /api/v1 (README: Integration): a FastAPI sub-application
with its own OpenAPI schema (`/api/v1/openapi.json`) and docs (`/api/v1/docs`), so that the
webhook app itself keeps none.

Keys and scopes: `auth`; errors as RFC 9457 problems: `problems`; cursor pages: `pagination`;
`Idempotency-Key`: `idempotent`.
"""

from collections.abc import Callable

from fastapi import FastAPI

from bot.api import actions, contacts, events, problems, report, tasks, webhooks
from bot.core.services import Services

PREFIX = "/api/v1"  # where bot/app.py mounts it
ERRORS = problems.documented(401, 403, 404, 409, 422, 429, 500, 503)


def build_app(services: Callable[[], Services]) -> FastAPI:
    """The API app; `services` gives the web app's services (built in its lifespan)."""
    api = FastAPI(title="opsbot integration API", version="1",
                  description="Tasks, contacts, the audit stream and the KPI report. "
                  "Authorization: Bearer <key> (`opsbot apikeys create`).",
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    api.state.services_of = services
    problems.install(api)
    for module in (tasks, actions, contacts, events, report, webhooks):
        api.include_router(module.router, responses=ERRORS)
    return api

"""The web console under /console (README: Console): a FastAPI sub-application of
server-rendered pages (Jinja2), improved by htmx, Server-Sent Events and charts whose files
opsbot serves itself (`static/vendor`, VENDORED.md).

Sign-in, sessions and CSRF: `auth`, `signin`; error pages: `pages`; the screens: `board`,
`task`, `kpis`, `agents`, `operations`, `rules_page`, `people`.
"""

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from bot.console import agents, board, kpis, operations, pages, people, rules_page, signin, task
from bot.core.services import Services

PREFIX = "/console"  # where bot/app.py mounts it


def build_app(services: Callable[[], Services]) -> FastAPI:
    """The console app; `services` gives the web app's services (built in its lifespan)."""
    console = FastAPI(title="opsbot console", docs_url=None, redoc_url=None, openapi_url=None)
    console.state.services_of = services
    console.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    pages.install(console)
    for module in (signin, board, task, kpis, agents, operations, rules_page, people):
        console.include_router(module.router)
    return console

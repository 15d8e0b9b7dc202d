"""Rendering: the Jinja2 templates, the context every page gets, and error pages (a person
never sees a traceback)."""

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from bot.console.auth import (
    CSRF_FIELD,
    CSRF_HEADER,
    Refused,
    SignInNeeded,
    StepUpNeeded,
    services_of,
)
from store.errors import NotAllowed, NotFound

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
STATIC = HERE / "static"
log = logging.getLogger(__name__)


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The page `name` with `context`, the viewer (when signed in) and the helpers every
    template uses."""
    context.setdefault("viewer", None)
    context["nav"] = _nav(context["viewer"])
    return TEMPLATES.TemplateResponse(request, name, context | _helpers(request),
                                      status_code=status)


# The screens after the board: (route name, label, who sees it: everyone|overseers|admin)
NAV = (("kpis_page", "KPIs", "everyone"), ("agents_page", "Agents", "everyone"),
       ("operations_page", "Operations", "overseers"), ("rules_page", "Rules", "overseers"),
       ("users_page", "People", "admin"))


def _nav(viewer) -> list[tuple[str, str]]:
    if viewer is None:
        return []
    sees = {"everyone": True, "overseers": viewer.oversees, "admin": viewer.is_admin}
    return [(name, label) for name, label, audience in NAV if sees[audience]]


def _helpers(request: Request) -> dict[str, Any]:
    timezone = services_of(request).rules.current.tz
    return {"csrf_field": CSRF_FIELD, "csrf_header": CSRF_HEADER, "local": _local(timezone),
            "timezone": timezone.key, "as_text": _as_text}


def _as_text(value: Any) -> str:
    """An audit detail as a person reads it: text as it is, the rest as JSON (unescaped
    accents and quotes; the template escapes it for HTML)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _local(timezone: ZoneInfo):
    def local(value: datetime | None, pattern: str = "%Y-%m-%d %H:%M") -> str:
        """`value` (UTC) in the business timezone, for people; "—" for none."""
        if value is None:
            return "—"
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(timezone).strftime(pattern)
    return local


def redirect(url: str) -> RedirectResponse:
    """See-other to `url` (after a POST, so that a reload does not post again)."""
    return RedirectResponse(url, status_code=303)


def install(app: FastAPI) -> None:
    """Answers every error of the console with a page (or a redirect to sign in)."""
    app.add_exception_handler(SignInNeeded, _to_sign_in)
    app.add_exception_handler(StepUpNeeded, _to_step_up)
    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(NotAllowed, _not_allowed)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _failed)


def _to_sign_in(request: Request, _exc: Exception) -> Response:
    target = request.url_for("sign_in_page").path + "?next=" + quote(_next_of(request))
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return redirect(target)


def _to_step_up(request: Request, exc: Exception) -> Response:
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": exc.target})
    return redirect(exc.target)


def _next_of(request: Request) -> str:
    """Where to come back after signing in: this page (a GET), else the board."""
    if request.method == "GET" and not request.headers.get("HX-Request"):
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return request.url_for("board_page").path


def _error(request: Request, status: int, sentence: str) -> HTMLResponse:
    return render(request, "error.html", status=status, status_code=status, sentence=sentence)


def _refused(request: Request, exc: Exception) -> Response:
    return _error(request, exc.status, exc.sentence)


def _not_allowed(request: Request, exc: Exception) -> Response:
    return _error(request, 403, str(exc))


def _not_found(request: Request, exc: Exception) -> Response:
    return _error(request, 404, str(exc))


def _http(request: Request, exc: Exception) -> Response:
    sentence = "There is no such page." if exc.status_code == 404 else str(exc.detail)
    return _error(request, exc.status_code, sentence)


def _invalid(request: Request, exc: Exception) -> Response:
    fields = sorted({str(error["loc"][-1]) for error in exc.errors()})
    return _error(request, 400, "Please check: " + ", ".join(fields) + ".")


def _failed(request: Request, _exc: Exception) -> Response:
    log.exception("console %s %s failed", request.method, request.url.path)
    return _error(request, 500, "Something failed on our side and nothing was changed. Please "
                  "try again; if it keeps failing, tell your admin the time it happened.")

"""Every error of the API as an RFC 9457 problem (`application/problem+json`), never a
traceback: refusals, validation errors, unknown paths, and unexpected failures (logged, and
answered without details)."""

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from store.db import is_unavailable

PROBLEM_TYPE = "https://opsbot.dev/problems/"  # + a slug per status: `type` is a URI
MEDIA_TYPE = "application/problem+json"
log = logging.getLogger(__name__)


class ProblemDetails(BaseModel):
    """An error answer (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str


class Problem(Exception):
    """A refusal to answer with a problem: `detail` is a sentence for the integrator."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


def problem_body(status: int, detail: str, *, instance: str) -> dict[str, object]:
    """The problem document of `status` with `detail`, about the request path `instance`."""
    title = HTTPStatus(status).phrase
    return {"type": PROBLEM_TYPE + title.lower().replace(" ", "-"), "title": title,
            "status": status, "detail": detail, "instance": instance}


def problem_response(request: Request | Scope, status: int, detail: str,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    scope = request.scope if isinstance(request, Request) else request
    instance = scope.get("path", "")  # the whole path: a mounted app's too
    return JSONResponse(problem_body(status, detail, instance=instance), status_code=status,
                        headers=headers, media_type=MEDIA_TYPE)


def install(app: FastAPI) -> None:
    """Makes every error of `app` a problem."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_invalid)
    app.add_exception_handler(DataError, _on_unstorable)
    app.add_exception_handler(DBAPIError, _on_database_error)
    app.add_middleware(UnexpectedErrors)


def install_outside(app: FastAPI, prefix: str) -> None:
    """Makes the errors that `app` (the one the API is mounted in) answers for paths under
    `prefix` problems too: a path its mount does not match (a raw newline in it, which the
    mount's pattern never matches) is answered by `app` itself."""

    async def on_http(request: Request, exc: Exception) -> JSONResponse | Response:
        if request.url.path.startswith(prefix):
            return await _on_http(request, exc)
        return await http_exception_handler(request, exc)

    app.add_exception_handler(HTTPException, on_http)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(request, exc.status, exc.detail, exc.headers)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code in (404, 405):
        detail = (f"There is no {request.method} {request.url.path} in this API; see "
                  "/api/v1/docs")
    return problem_response(request, exc.status_code, detail, exc.headers)


async def _on_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(request, 422, "; ".join(_describe(error) for error in exc.errors()))


async def _on_unstorable(request: Request, exc: Exception) -> JSONResponse:
    """A value the database refuses (PostgreSQL: a NUL character, a number out of range):
    the request's fault, not ours."""
    log.info("API %s %s: a value the database refuses", request.method, request.url.path)
    return problem_response(request, 422, "A value of this request cannot be stored or "
                            "searched for (a NUL character, a number out of range)")


async def _on_database_error(request: Request, exc: Exception) -> JSONResponse:
    """A database that does not answer is a 503 to retry; any other database error is ours
    (500, logged by UnexpectedErrors)."""
    if not is_unavailable(exc):
        raise exc
    log.warning("API %s %s: the database is unavailable", request.method, request.url.path)
    return problem_response(request, 503, "The database does not answer right now; retry in a "
                            "few seconds", {"Retry-After": "5"})


def _describe(error: dict) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg', 'invalid')}"


class UnexpectedErrors:
    """An exception nobody handled: logged with its traceback, answered as a bare 500
    problem (its text may hold data or hosts)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("API %s %s failed", scope.get("method"), scope.get("path"))
            if not started:
                response = problem_response(scope, 500, "Something failed on our side; "
                                            "nothing was changed. Please try again later.")
                await response(scope, receive, send)


def documented(*statuses: int) -> dict[int | str, dict]:
    """The OpenAPI `responses` of these error statuses: each a problem document."""
    return {status: {"model": ProblemDetails, "description": HTTPStatus(status).phrase,
                     "content": {MEDIA_TYPE: {"schema": {"$ref":
                                 "#/components/schemas/ProblemDetails"}}}}
            for status in statuses}

"""`Idempotency-Key` on every POST and PATCH: a retry with the same key and the same request
gets the first answer again and changes nothing; the same key with another request is a 422.
The answer is kept in the transaction that acts (store.idempotency)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from bot.api.auth import Caller, services_of
from bot.api.problems import MEDIA_TYPE, Problem, problem_body
from store.errors import ConcurrentUpdate
from store.idempotency import PENDING, Stored, answer_request, claim_request, request_digest
from store.types import utcnow

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=255,
    description="Any unique string (a UUID): a retry with it is answered as the first time.")]
REPLAYED = "Idempotent-Replayed"


@dataclass(frozen=True)
class Answer:
    """What a POST or PATCH answers: its status and JSON body."""

    status: int
    body: dict[str, Any]


def refusal(request: Request, status: int, detail: str) -> Answer:
    """A problem answer that is kept and replayed like a success (the refusal was audited)."""
    return Answer(status, problem_body(status, detail, instance=request.url.path))


def run_once(request: Request, caller: Caller, key: str | None, body: Any,
             act: Callable[[Session], Answer]) -> tuple[JSONResponse, bool]:
    """Runs `act` in one transaction, unless `key` was used before: then the first answer.
    Returns the response and whether `act` ran (False for a replay)."""
    services = services_of(request)
    digest = request_digest(method=request.method, path=request.url.path, body=body)
    try:
        with services.db.transaction() as session:
            claimed = (claim_request(session, api_key_id=caller.key_id, key=key,
                                     digest=digest, now=utcnow()) if key else None)
            if isinstance(claimed, Stored):
                return _replay(claimed), False
            answer = act(session)
            if claimed is not None:
                answer_request(claimed, status_code=answer.status, response=answer.body)
    except ConcurrentUpdate as exc:
        raise Problem(409, str(exc)) from exc
    return _respond(answer.status, answer.body), True


def _replay(stored: Stored) -> JSONResponse:
    if not stored.same_request:
        raise Problem(422, "Idempotency-Key: this key was used with another request; "
                      "use a new key for a new request")
    if stored.status_code == PENDING:
        raise Problem(409, "Idempotency-Key: the first request with this key is still running")
    return _respond(stored.status_code, stored.response, headers={REPLAYED: "true"})


def _respond(status: int, body: dict[str, Any],
             headers: dict[str, str] | None = None) -> JSONResponse:
    media = MEDIA_TYPE if status >= 400 else "application/json"
    return JSONResponse(body, status_code=status, media_type=media, headers=headers)

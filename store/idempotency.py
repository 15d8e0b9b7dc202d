"""Idempotent POST and PATCH requests of the integration API (`Idempotency-Key` header).

The first request with a key inserts its row at once, in the caller's transaction, and fills
in the answer before that transaction commits: a retry with the same key finds the answer and
gets it again. Two concurrent requests with one key cannot both act: the unique (api key, key)
makes the second INSERT wait for the first transaction (PostgreSQL) or the writer lock (SQLite),
then find its row.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import IdempotentRequest
from store.rows import insert_row

PENDING = 0  # status_code of a row whose request has not answered yet


@dataclass(frozen=True)
class Stored:
    """The answer given to the first request with a key, and whether this one is the same
    request (same method, path and body)."""

    status_code: int
    response: dict[str, Any]
    same_request: bool


def request_digest(*, method: str, path: str, body: Any) -> str:
    """The SHA-256 of a request: its method, path and body (as canonical JSON)."""
    text = json.dumps([method.upper(), path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def claim_request(session: Session, *, api_key_id: int, key: str, digest: str,
                  now: datetime) -> IdempotentRequest | Stored:
    """The new row of this request, which the caller then answers (`answer_request`), or
    what was stored for the key when a request used it before."""
    row = insert_row(session, IdempotentRequest, {
        "api_key_id": api_key_id, "key": key, "request_digest": digest,
        "status_code": PENDING, "response": {}, "created_at": now,
    }, skip_conflict=True)
    if row is not None:
        return row
    query = select(IdempotentRequest).where(IdempotentRequest.api_key_id == api_key_id,
                                            IdempotentRequest.key == key)
    stored = session.scalars(query).one()
    return Stored(stored.status_code, stored.response, stored.request_digest == digest)


def answer_request(row: IdempotentRequest, *, status_code: int,
                   response: dict[str, Any]) -> None:
    """Keeps the answer of the request of `row` for its retries (written at commit)."""
    row.status_code, row.response = status_code, response

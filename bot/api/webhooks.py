"""`POST|GET /webhooks`: the CRM's outgoing-webhook endpoints (scope webhooks:admin)."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from bot.api.auth import Caller, require, services_of
from bot.api.idempotent import Answer, IdempotencyKey, refusal, run_once
from store.models import WebhookEndpoint
from store.types import utcnow
from store.webhooks import EVENT_TYPES, InvalidEndpoint, add_endpoint, list_endpoints

router = APIRouter(tags=["webhooks"])
Admin = Annotated[Caller, Depends(require("webhooks:admin"))]


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000, description="https://crm.example/hook")
    events: list[str] = Field(min_length=1, max_length=len(EVENT_TYPES),
                              description=f"Among {', '.join(EVENT_TYPES)}.")


class EndpointOut(BaseModel):
    id: int
    url: str
    events: list[str]
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None


class NewEndpointOut(EndpointOut):
    secret: str = Field(description="whsec_…, shown this once: verify signatures with it.")


@router.post("/webhooks", response_model=NewEndpointOut, status_code=201)
def add_webhook(request: Request, caller: Admin, endpoint: EndpointIn,
                idempotency_key: IdempotencyKey = None):
    """Subscribes a URL to event types; the answer holds its secret, once."""

    def act(session: Session) -> Answer:
        try:
            row, secret = add_endpoint(session, url=endpoint.url, events=endpoint.events,
                                       now=utcnow())
        except InvalidEndpoint as exc:
            return refusal(request, 422, str(exc))
        return Answer(201, NewEndpointOut(**_fields(row), secret=secret).model_dump(mode="json"))

    return run_once(request, caller, idempotency_key, endpoint.model_dump(mode="json"), act)[0]


@router.get("/webhooks", response_model=list[EndpointOut])
def list_webhooks(request: Request, caller: Admin) -> list[EndpointOut]:
    """Every endpoint, enabled or not (secrets are never shown again)."""
    with services_of(request).db.transaction(readonly=True) as session:
        return [EndpointOut(**_fields(row)) for row in list_endpoints(session)]


def _fields(row: WebhookEndpoint) -> dict:
    return {"id": row.id, "url": row.url, "events": list(row.events), "created_at":
            row.created_at, "disabled_at": row.disabled_at,
            "disabled_reason": row.disabled_reason}

"""`GET|PATCH /contacts/{wa_id}`, `GET /contacts`: customers' CRM fields. What a PATCH sets
(status, tags) is what the rules of the customer's next message see."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.orm import Session

from bot.api.auth import Caller, require, services_of
from bot.api.idempotent import Answer, IdempotencyKey, run_once
from bot.api.pagination import CursorParam, LimitParam, Page, decode_cursor, encode_cursor
from bot.api.problems import Problem
from bot.api.schemas import ContactOut, contact_out
from bot.api.tasks import utc
from bot.core import tunables
from store.contacts import find_contact, page_contacts
from store.crm import update_contact
from store.errors import NotFound
from store.gdpr import Erasure, erase_contact, export_contact
from store.models import Contact
from store.types import utcnow

WaIdParam = Annotated[str, Path(min_length=1, max_length=64,
                                description="The customer's WhatsApp number (or BSUID).")]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$")]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=128)]

router = APIRouter(tags=["contacts"])


class ContactPatch(BaseModel):
    """The CRM fields to change; the others stay. An `external_ids` entry of null removes
    that system's id; a null name or language clears it."""

    model_config = ConfigDict(extra="forbid")

    crm_status: Slug | None = Field(default=None, description="lead, customer, vip…")
    tags: list[Tag] | None = Field(default=None, max_length=50)
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z]{2})?$")] | None \
        = None
    external_ids: dict[Slug, ExternalId | None] | None = Field(default=None, max_length=20)

    def changes(self) -> dict:
        values = self.model_dump(exclude_unset=True)
        for field in ("crm_status", "tags", "external_ids"):
            if field in values and values[field] is None:
                raise Problem(422, f"{field}: cannot be null")
        if "tags" in values:
            values["tags"] = sorted(set(values["tags"]))
        return values


@router.get("/contacts/{wa_id}", response_model=ContactOut)
def show_contact(request: Request, caller: Annotated[Caller, Depends(require("contacts:read"))],
                 wa_id: WaIdParam) -> ContactOut:
    """One customer by WhatsApp number."""
    with services_of(request).db.transaction(readonly=True) as session:
        return contact_out(_find(session, wa_id))


@router.patch("/contacts/{wa_id}", response_model=ContactOut)
def patch_contact(request: Request,
                  caller: Annotated[Caller, Depends(require("contacts:write"))],
                  wa_id: WaIdParam, patch: ContactPatch,
                  idempotency_key: IdempotencyKey = None):
    """Changes CRM fields (audited as `contact_updated`)."""
    changes = patch.changes()

    def act(session: Session) -> Answer:
        contact = _find(session, wa_id)
        update_contact(session, contact=contact, changes=changes, actor=caller.label,
                       now=utcnow())
        return Answer(200, contact_out(contact).model_dump(mode="json"))

    return run_once(request, caller, idempotency_key, patch.model_dump(mode="json",
                    exclude_unset=True), act)[0]


@router.get("/contacts", response_model=Page[ContactOut])
def list_contacts(
    request: Request,
    caller: Annotated[Caller, Depends(require("contacts:read"))],
    external_id: Annotated[str | None, Query(
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}:.{1,128}$",
        description="system:id, such as hubspot:123")] = None,
    crm_status: Annotated[str | None, Query(max_length=32)] = None,
    updated_after: datetime | None = None,
    cursor: CursorParam = None,
    limit: LimitParam = tunables.API_PAGE_DEFAULT,
) -> Page[ContactOut]:
    """Customers in id order (erased ones are gone), filtered."""
    system, _, value = (external_id or "").partition(":")
    with services_of(request).db.transaction(readonly=True) as session:
        contacts = page_contacts(session, after=decode_cursor(cursor), limit=limit + 1,
                                 external_id=(system, value) if external_id else None,
                                 crm_status=crm_status,
                                 updated_after=updated_after and utc(updated_after))
        data = [contact_out(contact) for contact in contacts[:limit]]
    more = len(contacts) > limit
    return Page[ContactOut](data=data, next_cursor=encode_cursor(data[-1].id) if more else None)


class ContactExport(BaseModel):
    """Everything opsbot holds about a customer (`opsbot contacts export`)."""

    contact: dict[str, Any]
    messages: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    ratings: list[dict[str, Any]]
    media_ids: list[str]
    audit_events: list[dict[str, Any]]


def _said(text: str) -> str:
    """`text` without the whitespace around it, refused when nothing is left. Python's
    `str.strip`, as the store reads a reason: pydantic's own strip keeps the ASCII separators
    (\x1c-\x1f), which then reached the store as an empty reason (a 500)."""
    if not text.strip():
        raise ValueError("must say something, not only blanks")
    return text.strip()


class ErasureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(min_length=1, max_length=500),
                      AfterValidator(_said)]


@router.get("/contacts/{wa_id}/export", response_model=ContactExport)
def export_customer(request: Request,
                    caller: Annotated[Caller, Depends(require("contacts:admin"))],
                    wa_id: WaIdParam) -> ContactExport:
    """A customer's access request: everything opsbot holds about them."""
    with services_of(request).db.transaction(readonly=True) as session:
        try:
            return ContactExport(**export_contact(session, wa_id=wa_id))
        except NotFound as exc:
            raise Problem(404, f"There is no customer {wa_id}") from exc


@router.post("/contacts/{wa_id}/erase", response_model=Erasure)
def erase_customer(request: Request,
                   caller: Annotated[Caller, Depends(require("contacts:admin"))],
                   wa_id: WaIdParam, erasure: ErasureRequest,
                   idempotency_key: IdempotencyKey = None):
    """A customer's erasure request: their data key is destroyed, for good (audited as
    `erased`, with the reason); tasks keep their anonymous figures."""

    def act(session: Session) -> Answer:
        try:
            done = erase_contact(session, wa_id=wa_id, actor=caller.label,
                                 reason=erasure.reason, now=utcnow())
        except NotFound as exc:
            raise Problem(404, f"There is no customer {wa_id}") from exc
        return Answer(200, done.as_dict())

    return run_once(request, caller, idempotency_key, erasure.model_dump(mode="json"), act)[0]


def _find(session: Session, wa_id: str) -> Contact:
    contact = find_contact(session, wa_id=wa_id)
    if contact is None:
        raise Problem(404, f"There is no customer {wa_id}")
    return contact

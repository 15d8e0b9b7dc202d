"""Reading one stored WhatsApp item: a customer message (via pywa) or a delivery status.

A message item is not always a request: the customer may edit or delete an earlier message,
change number, answer a call permission request, or send something WhatsApp could only
report as an error. `InboundMessage.kind` says which (`Inbound`); only a REQUEST may open a
task. pywa's types read each shape; what pywa cannot read is read from the raw JSON.
"""

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from bot.whatsapp.payloads import PayloadError, instant_of
from bot.whatsapp.texts import flow_text, message_text
from rules import MessageFacts, MessageType

log = logging.getLogger(__name__)

_FACT_TYPES = {t.value for t in MessageType}
MAX_NAME = 200  # the contacts.name column
_NUMBER_CHANGES = {"user_changed_number", "customer_changed_number", "user_changed_user_id"}


class Inbound(StrEnum):
    """What a customer's message item is."""

    REQUEST = "request"  # something the customer wrote, sent or chose (a flow's answers too)
    EDIT = "edit"  # the customer edited an earlier message (`refers_to`)
    REVOKE = "revoke"  # the customer deleted an earlier message (`refers_to`)
    NUMBER_CHANGE = "number change"  # details: new_wa_id, new_user_id
    IDENTITY_CHANGE = "identity change"  # a new phone or a reinstall: details: identity
    SYSTEM = "system"  # another notice from WhatsApp about the customer
    CALL_PERMISSION = "call permission"  # the answer to a call permission request
    ERROR = "error"  # WhatsApp could only tell that something failed to arrive


@dataclass(frozen=True)
class InboundMessage:
    """What opsbot keeps of a customer message; `parsed_by` says whether pywa read it and
    `phone_id` is the business number it was sent to."""

    wamid: str
    wa_id: str | None
    user_id: str | None
    name: str | None
    type: str
    at: datetime
    text: str
    media_id: str | None = None
    button_payload: str | None = None
    referral: str | None = None
    reaction_to: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    parsed_by: str = "pywa"
    kind: Inbound = Inbound.REQUEST
    refers_to: str | None = None
    phone_id: str | None = None

    def facts(self, language: str | None = None) -> MessageFacts:
        kind = MessageType(self.type) if self.type in _FACT_TYPES else MessageType.unsupported
        flow = self.details.get("flow") or {}
        return MessageFacts(text=self.text, type=kind, language=language,
                            referral=self.referral, button_payload=self.button_payload,
                            flow_name=flow.get("name"), flow_fields=flow.get("fields") or {})


@dataclass(frozen=True)
class DeliveryStatus:
    wamid: str
    status: str
    at: datetime | None
    error: str | None


@dataclass(frozen=True)
class PlatformError:
    """An error Meta reports about the whole account or number (a webhook-level `errors`
    entry, e.g. 130429 rate limit hit), not about one message."""

    code: str
    title: str
    details: str | None

    def __str__(self) -> str:
        text = f"{self.code} {self.title}".strip()
        return f"{text}: {self.details}" if self.details else text


@dataclass(frozen=True)
class _Read:
    """What one reader made of a message's content."""

    kind: Inbound
    type: str
    text: str
    payload: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    refers_to: str | None = None


def read_message(raw: bytes, *, received_at: datetime) -> InboundMessage:
    """The customer message in a stored single-message envelope. A timestamp outside a sane
    range around `received_at` is replaced by it (`details["timestamp_replaced"]` keeps
    what WhatsApp said).

    Raises PayloadError when it cannot be read at all (no id, no sender).
    """
    body = _load(raw)
    value = body["entry"][0]["changes"][0]["value"]
    message = value["messages"][0]
    contact = (value.get("contacts") or [{}])[0]
    at, replaced = instant_of(message.get("timestamp"), received_at.astimezone(UTC))
    if replaced:
        log.warning("message %s: timestamp %r replaced by the receive time",
                    message.get("id"), str(message.get("timestamp"))[:40])
    try:
        read, parsed_by = _from_pywa(_pywa_update(body, at), message), "pywa"
    except Exception as exc:  # pywa raises KeyError/ValueError/... on shapes it does not know
        log.info("pywa could not parse message %s (%s); reading raw JSON", message.get("id"),
                 exc.__class__.__name__)  # its text may quote the customer's message
        read, parsed_by = _from_raw(message), "raw"
    if replaced:
        read.extra["timestamp_replaced"] = str(message.get("timestamp"))[:40]
    phone_id = (value.get("metadata") or {}).get("phone_number_id")
    return _build(message, contact, at, read, parsed_by,
                  str(phone_id) if phone_id is not None else None)


def _load(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
        body["entry"][0]["changes"][0]["value"]
        return body
    except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
        raise PayloadError(f"stored item is not a WhatsApp envelope: {exc}") from exc


@lru_cache(maxsize=1)
def _parser():
    from pywa import WhatsApp

    return WhatsApp()  # no token: a parser only, it never calls the API


def _pywa_update(body: dict, at: datetime):
    """pywa's RawUpdate of `body`, with what pywa 4.5 insists on filled in: contacts[0]
    ["user_id"] (older payloads have no BSUID) and a timestamp it can read (`at`)."""
    from pywa.types import RawUpdate

    value = body["entry"][0]["changes"][0]["value"]
    contacts = [{"user_id": None, **c} for c in value.get("contacts") or []]
    messages = [{**value["messages"][0], "timestamp": str(int(at.timestamp()))}]
    patched = {**body, "entry": [{**body["entry"][0], "changes": [
        {**body["entry"][0]["changes"][0],
         "value": {**value, "contacts": contacts, "messages": messages}}]}]}
    return RawUpdate(json.dumps(patched).encode(), hmac_header=None, update_hash="opsbot")


def _from_pywa(update, message: dict) -> _Read:
    from pywa import types

    kind = message.get("type")
    interactive = (message.get("interactive") or {}).get("type")
    if kind not in {t.value for t in types.MessageType} or kind == "unknown":
        raise PayloadError(f"pywa does not know message type {kind!r}")
    if kind == "edit":
        edited = types.EditedMessage.from_update(_parser(), update)
        text, extra = message_text(edited.message)
        return _Read(Inbound.EDIT, "edit", text, extra=extra,
                     refers_to=edited.original_message_id)
    if kind == "revoke":
        deleted = types.DeletedMessage.from_update(_parser(), update)
        return _Read(Inbound.REVOKE, "revoke", "[deleted a message]",
                     refers_to=deleted.original_message_id)
    if kind == "system":
        return _system(update, message)
    if kind == "interactive" and interactive is None:  # only an `errors` list
        error = types.Message.from_update(_parser(), update).error
        return _error_read(error and error.code, error and (error.details or error.message))
    if interactive == "call_permission_reply":
        answer = types.CallPermissionUpdate.from_update(_parser(), update)
        accepted = bool(answer)
        return _Read(Inbound.CALL_PERMISSION, "call_permission",
                     "[accepted calls]" if accepted else "[declined calls]",
                     extra={"call_permission": {"accepted": accepted,
                                                "source": str(answer.response_source)}})
    if interactive == "nfm_reply":
        flow = types.FlowCompletion.from_update(_parser(), update)
        return _flow_read(flow.body, flow.token, flow.response)
    if kind == "button" or interactive == "button_reply":
        button = types.CallbackButton.from_update(_parser(), update)
        return _Read(Inbound.REQUEST, kind, button.title, str(button.data))
    if interactive == "list_reply":
        selection = types.CallbackSelection.from_update(_parser(), update)
        text = " — ".join(filter(None, [selection.title, selection.description]))
        return _Read(Inbound.REQUEST, kind, text, str(selection.data))
    text, extra = message_text(types.Message.from_update(_parser(), update))
    return _Read(Inbound.REQUEST, kind, text, extra=extra)


def _system(update, message: dict) -> _Read:
    from pywa import types

    system = (message.get("system") or {}).get("type")
    if system == "customer_identity_changed":
        change = types.IdentityChange.from_update(_parser(), update)
        identity = {"hash": change.identity.hash, "acknowledged": change.identity.acknowledged}
        return _Read(Inbound.IDENTITY_CHANGE, "system", change.body,
                     extra={"identity": identity})
    if system in _NUMBER_CHANGES:
        change = types.PhoneNumberChange.from_update(_parser(), update)
        return _Read(Inbound.NUMBER_CHANGE, "system", change.body,
                     extra={"new_wa_id": change.new_wa_id, "new_user_id": change.new_user_id})
    raise PayloadError(f"pywa does not know system message type {system!r}")


def _error_read(code: Any, reason: Any) -> _Read:
    detail = " ".join(filter(None, [str(code) if code else None, str(reason or "")])).strip()
    return _Read(Inbound.ERROR, "interactive", f"[not received: {detail or 'unknown error'}]",
                 extra={"error": detail} if detail else {})


def _flow_read(body: str | None, token: str | None, answers: dict) -> _Read:
    name = (token or "").split(":", 1)[0] or None
    fields = {str(k): v for k, v in answers.items() if k != "flow_token"}
    flow = {"name": name, "token": token, "fields": fields}
    return _Read(Inbound.REQUEST, "flow", flow_text(body, fields), extra={"flow": flow})


def _from_raw(message: dict) -> _Read:
    """What the raw JSON says of a message pywa could not read."""
    kind = str(message.get("type") or "unknown")
    content = message.get(kind) if isinstance(message.get(kind), dict) else {}
    if kind in ("edit", "revoke"):
        edit = Inbound.EDIT if kind == "edit" else Inbound.REVOKE
        inner = content.get("message") if isinstance(content.get("message"), dict) else {}
        text = _raw_text(inner, str(inner.get("type") or kind)) if inner else "[deleted a message]"
        return _Read(edit, kind, text, refers_to=content.get("original_message_id"))
    if kind == "system":
        system = content.get("type")
        change = (Inbound.NUMBER_CHANGE if system in _NUMBER_CHANGES
                  else Inbound.IDENTITY_CHANGE if system == "customer_identity_changed"
                  else Inbound.SYSTEM)
        extra = {"new_wa_id": content.get("wa_id") or content.get("new_wa_id"),
                 "new_user_id": content.get("user_id")} if change == Inbound.NUMBER_CHANGE else {}
        return _Read(change, "system", str(content.get("body") or f"[{system}]"), extra=extra)
    payload = None
    if kind == "interactive":  # e.g. a list reply without `context`, or a new reply type
        inner_type = content.get("type")
        if inner_type is None:
            error = ((message.get("errors") or [{}])[0]) if isinstance(message.get("errors"),
                                                                       list) else {}
            return _error_read(error.get("code"), (error.get("error_data") or {}).get(
                "details") or error.get("title") or error.get("message"))
        if inner_type == "nfm_reply":
            return _raw_flow(content.get("nfm_reply") or {})
        content = content.get(inner_type, {}) or {}
        payload = content.get("id")
    elif kind == "button":
        payload = content.get("payload")
    extra = {"media_id": content.get("id")} if content.get("mime_type") else {}
    return _Read(Inbound.REQUEST, kind, _raw_text(content, kind), payload, extra)


def _raw_flow(reply: dict) -> _Read:
    try:
        answers = json.loads(reply.get("response_json") or "{}")
    except ValueError:
        answers = {}
    answers = answers if isinstance(answers, dict) else {}
    return _flow_read(reply.get("body"), answers.get("flow_token"), answers)


def _raw_text(content: dict, kind: str) -> str:
    text = (content.get("body") or content.get("caption") or content.get("text")
            or content.get("title") or f"[{kind}]")
    return str(text.get("body", f"[{kind}]") if isinstance(text, dict) else text)


def _build(message: dict, contact: dict, at: datetime, read: _Read, parsed_by: str,
           phone_id: str | None) -> InboundMessage:
    if not message.get("id"):
        raise PayloadError("message has no id")
    wa_id = contact.get("wa_id") or message.get("from")
    user_id = contact.get("user_id") or message.get("from_user_id")
    if not wa_id and not user_id:
        raise PayloadError("message has no sender (neither wa_id nor user_id)")
    referral = message.get("referral") or {}
    extra = read.extra
    details = {k: v for k, v in extra.items() if k not in ("media_id", "reaction_to")}
    if referral:
        details["referral"] = referral
    return InboundMessage(
        wamid=str(message["id"]), wa_id=wa_id, user_id=user_id,
        name=profile_name(contact), type=read.type, at=at, text=read.text,
        media_id=extra.get("media_id"), button_payload=read.payload,
        referral=referral.get("source_id") or referral.get("headline"),
        reaction_to=extra.get("reaction_to"), details=details, parsed_by=parsed_by,
        kind=read.kind, refers_to=read.refers_to, phone_id=phone_id,
    )


def profile_name(contact: dict) -> str | None:
    """The customer's WhatsApp profile name with its whitespace normalised (None when it is
    blank: spaces, U+3000…) and cut to what is stored (MAX_NAME characters)."""
    name = (contact.get("profile") or {}).get("name")
    words = str(name).split() if name is not None else []
    return " ".join(words)[:MAX_NAME] or None


def read_status(raw: bytes, *, received_at: datetime) -> DeliveryStatus:
    """The delivery status in a stored single-status envelope.

    Read from the raw JSON: pywa 4.5's MessageStatus needs `contacts`, which status
    webhooks do not carry. Raises PayloadError when the status has no id or no status.
    """
    body = _load(raw)
    status = (body["entry"][0]["changes"][0]["value"].get("statuses") or [{}])[0]
    if not status.get("id") or not status.get("status"):
        raise PayloadError("status has no message id or no status")
    errors = status.get("errors") or []
    error = "; ".join(_error_text(e) for e in errors) or None
    at = instant_of(status.get("timestamp"), received_at)[0] if status.get("timestamp") else None
    return DeliveryStatus(str(status["id"]), str(status["status"]).lower(), at, error)


def read_platform_errors(raw: bytes) -> list[PlatformError]:
    """The webhook-level errors of a stored `error` item."""
    errors = _load(raw)["entry"][0]["changes"][0]["value"].get("errors")
    if not isinstance(errors, list) or not errors:
        raise PayloadError("the item carries no `errors` list")
    return [PlatformError(str(e.get("code", "?")), str(e.get("title") or e.get("message") or ""),
                          (e.get("error_data") or {}).get("details"))
            for e in errors if isinstance(e, dict)]


def _error_text(error: dict) -> str:
    details = (error.get("error_data") or {}).get("details")
    text = f"{error.get('code', '?')} {error.get('title') or error.get('message') or ''}".strip()
    return f"{text}: {details}" if details else text

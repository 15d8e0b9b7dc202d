"""Reading one stored WhatsApp item: a customer message (via pywa) or a delivery status."""

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from bot.whatsapp.payloads import PayloadError
from bot.whatsapp.texts import message_text
from rules import MessageFacts, MessageType

log = logging.getLogger(__name__)

_FACT_TYPES = {t.value for t in MessageType}
MAX_NAME = 200  # the contacts.name column


@dataclass(frozen=True)
class InboundMessage:
    """What opsbot keeps of a customer message; `parsed_by` says whether pywa read it."""

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

    def facts(self, language: str | None = None) -> MessageFacts:
        kind = MessageType(self.type) if self.type in _FACT_TYPES else MessageType.unsupported
        return MessageFacts(text=self.text, type=kind, language=language,
                            referral=self.referral, button_payload=self.button_payload)


@dataclass(frozen=True)
class DeliveryStatus:
    wamid: str
    status: str
    at: datetime | None
    error: str | None


def read_message(raw: bytes) -> InboundMessage:
    """The customer message in a stored single-message envelope.

    Raises PayloadError when it cannot be read at all (no id, no sender, no timestamp).
    """
    body = _load(raw)
    value = body["entry"][0]["changes"][0]["value"]
    message = value["messages"][0]
    contact = (value.get("contacts") or [{}])[0]
    try:
        update = _pywa_update(body)
        return _from_pywa(update, message, contact)
    except Exception as exc:  # pywa raises KeyError/ValueError/... on shapes it does not know
        log.info("pywa could not parse message %s (%s); reading raw JSON", message.get("id"), exc)
        return _from_raw(message, contact)


def _load(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
        body["entry"][0]["changes"][0]["value"]
        return body
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise PayloadError(f"stored item is not a WhatsApp envelope: {exc}") from exc


@lru_cache(maxsize=1)
def _parser():
    from pywa import WhatsApp

    return WhatsApp()  # no token: a parser only, it never calls the API


def _pywa_update(body: dict):
    from pywa.types import RawUpdate

    value = body["entry"][0]["changes"][0]["value"]
    # pywa 4.5 reads contacts[0]["user_id"] unconditionally; older payloads have no BSUID.
    contacts = [{"user_id": None, **c} for c in value.get("contacts") or []]
    patched = {**body, "entry": [{**body["entry"][0], "changes": [
        {**body["entry"][0]["changes"][0], "value": {**value, "contacts": contacts}}]}]}
    return RawUpdate(json.dumps(patched).encode(), hmac_header=None, update_hash="opsbot")


def _from_pywa(update, message: dict, contact: dict) -> InboundMessage:
    from pywa.types import CallbackButton, CallbackSelection, Message, MessageType

    kind = message.get("type")
    if kind not in {t.value for t in MessageType} or kind == "unknown":
        raise PayloadError(f"pywa does not know message type {kind!r}")
    interactive = (message.get("interactive") or {}).get("type")
    if kind == "button" or interactive == "button_reply":
        parsed = CallbackButton.from_update(_parser(), update)
        text, payload, extra = parsed.title, str(parsed.data), {}
    elif interactive == "list_reply":
        parsed = CallbackSelection.from_update(_parser(), update)
        text = " — ".join(filter(None, [parsed.title, parsed.description]))
        payload, extra = str(parsed.data), {}
    else:
        parsed = Message.from_update(_parser(), update)
        text, extra = message_text(parsed)
        payload = None
    return _build(message, contact, parsed.timestamp, text, payload, extra, "pywa")


def _from_raw(message: dict, contact: dict) -> InboundMessage:
    if not message.get("id") or not message.get("timestamp"):
        raise PayloadError("message has no id or timestamp")
    kind = str(message.get("type") or "unknown")
    content = message.get(kind) if isinstance(message.get(kind), dict) else {}
    payload = None
    if kind == "interactive":  # e.g. a list reply without `context`, or a new reply type
        content = content.get(content.get("type"), {}) or {}
        payload = content.get("id")
    elif kind == "button":
        payload = content.get("payload")
    text = (content.get("body") or content.get("caption") or content.get("text")
            or content.get("title") or f"[{kind}]")
    at = datetime.fromtimestamp(int(message["timestamp"]), UTC)
    extra = {"media_id": content.get("id")} if content.get("mime_type") else {}
    return _build(message, contact, at, str(text), payload, extra, "raw")


def _build(message, contact, at, text, payload, extra, parsed_by) -> InboundMessage:
    wa_id = contact.get("wa_id") or message.get("from")
    user_id = contact.get("user_id") or message.get("from_user_id")
    if not wa_id and not user_id:
        raise PayloadError("message has no sender (neither wa_id nor user_id)")
    referral = message.get("referral") or {}
    details = {k: v for k, v in extra.items() if k not in ("media_id", "reaction_to")}
    if referral:
        details["referral"] = referral
    return InboundMessage(
        wamid=str(message["id"]), wa_id=wa_id, user_id=user_id,
        name=profile_name(contact), type=str(message.get("type")),
        at=at.astimezone(UTC), text=text, media_id=extra.get("media_id"),
        button_payload=payload, referral=referral.get("source_id") or referral.get("headline"),
        reaction_to=extra.get("reaction_to"), details=details, parsed_by=parsed_by,
    )


def profile_name(contact: dict) -> str | None:
    """The customer's WhatsApp profile name with its whitespace normalised (None when it is
    blank: spaces, U+3000…) and cut to what is stored (MAX_NAME characters)."""
    name = (contact.get("profile") or {}).get("name")
    words = str(name).split() if name is not None else []
    return " ".join(words)[:MAX_NAME] or None


def read_status(raw: bytes) -> DeliveryStatus:
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
    at = datetime.fromtimestamp(int(status["timestamp"]), UTC) if status.get("timestamp") else None
    return DeliveryStatus(str(status["id"]), str(status["status"]).lower(), at, error)


def _error_text(error: dict) -> str:
    details = (error.get("error_data") or {}).get("details")
    text = f"{error.get('code', '?')} {error.get('title') or error.get('message') or ''}".strip()
    return f"{text}: {details}" if details else text

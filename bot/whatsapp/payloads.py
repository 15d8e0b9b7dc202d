"""WhatsApp webhook bodies: split into stored items, then read into message facts.

pywa 4.5 parses one update = one envelope with one message (`entry[0].changes[0].value.
messages[0]`), and it needs `contacts[].user_id`, which older payloads lack. So intake splits
a body into single-item envelopes, and parsing gives pywa a copy with `user_id: null` filled
in; shapes pywa still cannot read are read from the raw JSON.
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)


class PayloadError(ValueError):
    """The body or item cannot be read; the message says why (stored as the failure reason)."""


@dataclass(frozen=True)
class EventItem:
    """One message, status or other change of a webhook body, as it is stored."""

    provider_event_id: str
    kind: str  # message | status | other
    contact_key: str | None
    occurred_at: datetime | None
    body: bytes


def body_digest(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def split_body(raw: bytes) -> list[EventItem]:
    """The items of a webhook body. Raises PayloadError when it is not a WhatsApp body."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("entry"), list):
        raise PayloadError("body is not a WhatsApp webhook (no `entry` list)")
    try:
        if _single(body):  # the usual case: one message or status, kept exactly as signed
            return [_single_item(body, raw)]
        return [item for entry in body["entry"] for item in _entry_items(body, entry)]
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise PayloadError(f"unexpected webhook shape: {exc.__class__.__name__}: {exc}") from exc


def _single(body: dict) -> bool:
    entries = body["entry"]
    if len(entries) != 1 or len(entries[0].get("changes") or []) != 1:
        return False
    value = entries[0]["changes"][0].get("value") or {}
    items = len(value.get("messages") or []) + len(value.get("statuses") or [])
    return items == 1 and len(value.get("contacts") or []) <= 1


def _single_item(body: dict, raw: bytes) -> EventItem:
    value = body["entry"][0]["changes"][0]["value"]
    keep = lambda part: raw  # noqa: E731 - the body itself is the single-item envelope
    if value.get("messages"):
        return _message_item(keep, value, value["messages"][0])
    return _status_item(keep, value["statuses"][0])


def _entry_items(body: dict, entry: dict) -> list[EventItem]:
    items = []
    for change in entry.get("changes", []):
        value = change.get("value") or {}
        wrap = _wrapper(body, entry, change, value)
        for message in value.get("messages") or []:
            items.append(_message_item(wrap, value, message))
        for status in value.get("statuses") or []:
            items.append(_status_item(wrap, status))
        if not value.get("messages") and not value.get("statuses"):
            raw = wrap({})
            items.append(EventItem(body_digest(raw), "other", None, None, raw))
    return items


def _wrapper(body: dict, entry: dict, change: dict, value: dict):
    rest = {k: v for k, v in value.items() if k not in ("messages", "statuses", "contacts")}

    def wrap(part: dict) -> bytes:
        inner = {**rest, **part}
        changes = [{"field": change.get("field", "messages"), "value": inner}]
        entries = [{"id": entry.get("id"), "changes": changes}]
        return _dump({"object": body.get("object"), "entry": entries})

    return wrap


def _message_item(wrap, value: dict, message: dict) -> EventItem:
    contact = _contact_of(value.get("contacts") or [], message)
    part: dict[str, Any] = {"messages": [message]}
    if contact is not None:
        part["contacts"] = [contact]
    key = (contact or {}).get("wa_id") or message.get("from") or (contact or {}).get("user_id")
    key = key or message.get("from_user_id")
    return EventItem(str(message["id"]), "message", key, _timestamp(message), wrap(part))


def _status_item(wrap, status: dict) -> EventItem:
    raw = wrap({"statuses": [status]})
    provider_id = f"{status['id']}:{status.get('status', 'unknown')}"
    key = status.get("recipient_id") or status.get("recipient_user_id")
    return EventItem(provider_id, "status", key, _timestamp(status), raw)


def _contact_of(contacts: list[dict], message: dict) -> dict | None:
    for contact in contacts:
        if message.get("from") and contact.get("wa_id") == message.get("from"):
            return contact
        if message.get("from_user_id") and contact.get("user_id") == message.get("from_user_id"):
            return contact
    return contacts[0] if len(contacts) == 1 else None


def _timestamp(item: dict) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(item["timestamp"]), UTC)
    except (KeyError, TypeError, ValueError):
        return None


def _dump(value: dict) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

"""WhatsApp webhook bodies: split into stored items, then read into message facts.

pywa 4.5 parses one update = one envelope with one message (`entry[0].changes[0].value.
messages[0]`), and it needs `contacts[].user_id`, which older payloads lack. So intake splits
a body into single-item envelopes, and parsing gives pywa a copy with `user_id: null` filled
in; shapes pywa still cannot read are read from the raw JSON.
"""

import hashlib
import json
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

# What intake accepts of an item's ids: what the columns that keep them hold. A wamid is
# about 60 characters, a phone number at most 15 digits; anything beyond is not WhatsApp's.
MAX_ID = 256  # messages.provider_message_id
MAX_WA_ID = 32  # contacts.wa_id
MAX_USER_ID = 128  # contacts.user_id (a BSUID)
MAX_STATUS = 24  # "delivered", "read"... (a status row's id is "<wamid>:<status>")
# A timestamp is believed within this window around its receipt: Meta redelivers for up to
# 7 days after an outage, and phones' clocks drift; outside it, the receive time is used.
MAX_AGE = timedelta(days=30)
MAX_AHEAD = timedelta(minutes=10)


class PayloadError(ValueError):
    """The body or item cannot be read; the message says why (stored as the failure reason)."""


@dataclass(frozen=True)
class EventItem:
    """One message, status or other change of a webhook body, as it is stored; an item
    with an `error` is stored FAILED with that reason."""

    provider_event_id: str
    kind: str  # message | status | error | other | unreadable
    contact_key: str | None
    occurred_at: datetime | None
    body: bytes
    error: str | None = None


def body_digest(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def instant_of(value: Any, received_at: datetime) -> tuple[datetime, bool]:
    """The UTC instant of a WhatsApp `timestamp` (Unix seconds), and whether it was replaced:
    a missing, unreadable or absurd one (outside MAX_AGE before and MAX_AHEAD after
    `received_at`) gives `received_at`."""
    try:
        at = datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return received_at, True
    if not received_at - MAX_AGE <= at <= received_at + MAX_AHEAD:
        return received_at, True
    return at, False


def split_body(raw: bytes, *, received_at: datetime,
               phone_ids: Collection[str] = ()) -> list[EventItem]:
    """The items of a webhook body, each to be stored: one the rest cannot hold (bad ids,
    a number not in `phone_ids` when given, a shape we cannot read) carries its `error`.
    Raises PayloadError when the body is not a WhatsApp body at all."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"body is not JSON: {_reason(exc)}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("entry"), list):
        raise PayloadError("body is not a WhatsApp webhook (no `entry` list)")
    reader = _Reader(body, raw, received_at, frozenset(phone_ids))
    if reader.single():  # the usual case: one message or status, kept exactly as signed
        return [reader.guarded(lambda: raw, reader.single_item, reader.single_kind())]
    return [item for entry in body["entry"] for item in reader.entry_items(entry)]


class ItemError(ValueError):
    """This item cannot be kept as it is; it is stored FAILED with this reason."""


class _Reader:
    """Reads the items of one parsed body (`raw` is its signed bytes)."""

    def __init__(self, body: dict, raw: bytes, received_at: datetime,
                 phone_ids: frozenset[str]) -> None:
        self.body, self.raw = body, raw
        self.received_at, self.phone_ids = received_at, phone_ids
        self.count = 0

    def single(self) -> bool:
        try:
            entries = self.body["entry"]
            if len(entries) != 1 or len(entries[0].get("changes") or []) != 1:
                return False
            value = entries[0]["changes"][0].get("value") or {}
            items = len(value.get("messages") or []) + len(value.get("statuses") or [])
            return items == 1 and len(value.get("contacts") or []) <= 1
        except (AttributeError, TypeError, KeyError):
            return False

    def single_kind(self) -> str:
        value = self.body["entry"][0]["changes"][0]["value"]
        return "message" if value.get("messages") else "status"

    def single_item(self) -> EventItem:
        value = self.body["entry"][0]["changes"][0]["value"]
        keep = lambda part: self.raw  # noqa: E731 - the body itself is the single-item envelope
        if value.get("messages"):
            return self._message_item(keep, value, value["messages"][0])
        return self._status_item(keep, value, value["statuses"][0])

    def entry_items(self, entry: Any) -> list[EventItem]:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            return [self.guarded(lambda: _dump({"entry": [entry]}), _no_changes, "unreadable")]
        return [item for change in changes for item in self._change_items(entry, change)]

    def _change_items(self, entry: dict, change: Any) -> list[EventItem]:
        value = change.get("value") if isinstance(change, dict) else None
        if not isinstance(value, dict):
            return [self.guarded(lambda: _dump({"entry": [{**entry, "changes": [change]}]}),
                                 _no_value, "unreadable")]
        wrap = self._wrapper(entry, change, value)
        messages, statuses = value.get("messages") or [], value.get("statuses") or []
        if not isinstance(messages, list) or not isinstance(statuses, list):
            return [self.guarded(lambda: wrap({}), _not_lists, "unreadable")]
        items = [self.guarded(lambda m=message: wrap({"messages": [m]}),
                              lambda m=message: self._message_item(wrap, value, m), "message")
                 for message in messages]
        items += [self.guarded(lambda s=status: wrap({"statuses": [s]}),
                               lambda s=status: self._status_item(wrap, value, s), "status")
                  for status in statuses]
        if not messages and not statuses:
            items.append(self.guarded(lambda: wrap({}), lambda: self._other_item(wrap, value),
                                      "error" if value.get("errors") else "other"))
        return items

    def guarded(self, envelope: Callable[[], bytes], read: Callable[[], EventItem],
                kind: str) -> EventItem:
        """`read()`, or, when the item cannot be kept, a FAILED item of this `kind` saying
        why (its id is a digest of its envelope, so that a redelivery is recognised)."""
        self.count += 1
        try:
            return read()
        except Exception as exc:  # any shape: the item is kept, failed
            reason = str(exc) if isinstance(exc, ItemError) else (
                f"unexpected item shape: {_reason(exc)}")
        try:
            kept = envelope()
            provider_id = body_digest(kept)
        except Exception:  # e.g. nested too deep to write again: keep the whole body
            kept, provider_id = self.raw, f"{body_digest(self.raw)}#{self.count}"
        log.warning("intake: a WhatsApp item is kept as failed: %s", reason)
        return EventItem(provider_id, kind, None, None, kept, reason)

    def _check_number(self, value: dict) -> None:
        number = (value.get("metadata") or {}).get("phone_number_id")
        if self.phone_ids and str(number) not in self.phone_ids:
            raise ItemError(f"sent to WhatsApp number {_shown(number)}, which is not "
                            "configured (WHATSAPP_PHONE_ID)")

    def _wrapper(self, entry: dict, change: dict, value: dict) -> Callable[[dict], bytes]:
        rest = {k: v for k, v in value.items() if k not in ("messages", "statuses", "contacts")}

        def wrap(part: dict) -> bytes:
            inner = {**rest, **part}
            changes = [{"field": change.get("field", "messages"), "value": inner}]
            entries = [{"id": entry.get("id"), "changes": changes}]
            return _dump({"object": self.body.get("object"), "entry": entries})

        return wrap

    def _message_item(self, wrap, value: dict, message: dict) -> EventItem:
        self._check_number(value)
        contact = _contact_of(value.get("contacts") or [], message)
        part: dict[str, Any] = {"messages": [message]}
        if contact is not None:
            part["contacts"] = [contact]
        wamid = _checked_id(message.get("id"), "message id", MAX_ID)
        wa_id = (contact or {}).get("wa_id") or message.get("from")
        user_id = (contact or {}).get("user_id") or message.get("from_user_id")
        if wa_id:
            key = _checked_id(wa_id, "sender wa_id", MAX_WA_ID)
        else:
            key = _checked_id(user_id, "sender", MAX_USER_ID) if user_id else None
        return EventItem(wamid, "message", key, self._instant(message), wrap(part))

    def _status_item(self, wrap, value: dict, status: dict) -> EventItem:
        self._check_number(value)
        wamid = _checked_id(status.get("id"), "status message id", MAX_ID)
        state = _checked_id(status.get("status", "unknown"), "status", MAX_STATUS)
        key = status.get("recipient_id") or status.get("recipient_user_id")
        key = _checked_id(key, "status recipient", MAX_USER_ID) if key else None
        raw = wrap({"statuses": [status]})
        return EventItem(f"{wamid}:{state}", "status", key, self._instant(status), raw)

    def _other_item(self, wrap, value: dict) -> EventItem:
        self._check_number(value)
        raw = wrap({})
        if value.get("errors"):  # Meta's webhook-level errors carry no id: each receipt counts
            stamp = self.received_at.isoformat(timespec="seconds").encode()
            return EventItem(body_digest(raw + stamp), "error", None, self.received_at, raw)
        return EventItem(body_digest(raw), "other", None, self.received_at, raw)

    def _instant(self, item: dict) -> datetime:
        return instant_of(item.get("timestamp"), self.received_at)[0]


def _no_changes() -> EventItem:
    raise ItemError("entry has no `changes` list")


def _no_value() -> EventItem:
    raise ItemError("change has no `value` object")


def _not_lists() -> EventItem:
    raise ItemError("`messages` and `statuses` must be lists")


def _contact_of(contacts: list[dict], message: dict) -> dict | None:
    for contact in contacts:
        if message.get("from") and contact.get("wa_id") == message.get("from"):
            return contact
        if message.get("from_user_id") and contact.get("user_id") == message.get("from_user_id"):
            return contact
    return contacts[0] if len(contacts) == 1 else None


def _checked_id(value: Any, what: str, limit: int) -> str:
    """`value` as an id that the columns keep whole, or ItemError saying why not."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise ItemError(f"{what} is missing or not a string")
    if len(value) > limit:
        raise ItemError(f"{what} is {len(value)} characters long (at most {limit})")
    if not value.isprintable():
        raise ItemError(f"{what} contains control characters")
    return value


def _shown(value: Any) -> str:
    text = str(value)
    return repr(text[:40] if text.isprintable() else "?")


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def _dump(value: dict) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()

"""A sensible task text for every kind of WhatsApp message (pywa's parsed Message)."""

from typing import Any

_MEDIA = ("image", "video", "audio", "document", "sticker")


def message_text(message) -> tuple[str, dict[str, Any]]:
    """The text a task shows for `message`, and extra facts (media_id, reaction_to, …)."""
    kind = str(message.type)
    if kind == "text":
        return message.text or "", {}
    if kind in _MEDIA:
        return _media_text(kind, getattr(message, kind))
    reader = _READERS.get(kind)
    if reader is not None:
        return reader(message)
    return _unsupported_text(message)


def _media_text(kind: str, media) -> tuple[str, dict[str, Any]]:
    caption = getattr(media, "caption", None)
    label = kind
    if kind == "document" and getattr(media, "filename", None):
        label = f"document {media.filename}"
    if kind == "audio" and getattr(media, "voice", False):
        label = "voice message"
    text = caption or f"[{label}]"
    return text, {"media_id": media.id, "mime_type": getattr(media, "mime_type", None)}


def _location_text(message) -> tuple[str, dict[str, Any]]:
    loc = message.location
    place = ", ".join(filter(None, [loc.name, loc.address]))
    where = f"{loc.latitude:.5f}, {loc.longitude:.5f}"
    text = f"[location] {place} ({where})" if place else f"[location] {where}"
    return text, {"location": {"latitude": loc.latitude, "longitude": loc.longitude,
                               "name": loc.name, "address": loc.address}}


def _contacts_text(message) -> tuple[str, dict[str, Any]]:
    shared = []
    for contact in message.contacts:
        phones = ", ".join(p.phone for p in contact.phones if p.phone)
        shared.append(f"{contact.name.formatted_name} {phones}".strip())
    return "[contacts] " + "; ".join(shared), {"contacts": shared}


def _reaction_text(message) -> tuple[str, dict[str, Any]]:
    emoji = message.reaction.emoji
    text = emoji or "[reaction removed]"
    return text, {"reaction_to": message.reaction.message_id, "emoji": emoji}


def _order_text(message) -> tuple[str, dict[str, Any]]:
    order = message.order
    lines = [f"{p.quantity} × {p.sku} ({p.price} {p.currency})" for p in order.products]
    text = "[order] " + "; ".join(lines)
    if order.text:
        text += f" — {order.text}"
    items = [{"sku": p.sku, "quantity": p.quantity, "price": p.price, "currency": p.currency}
             for p in order.products]
    return text, {"order": {"catalog_id": order.catalog_id, "items": items}}


def _unsupported_text(message) -> tuple[str, dict[str, Any]]:
    unsupported = getattr(message, "unsupported", None)
    what = getattr(unsupported, "type", None) or str(message.type)
    error = getattr(message, "error", None)
    reason = getattr(error, "details", None) or getattr(error, "message", None)
    text = f"[unsupported message: {what}]"
    return text, {"error": str(reason)} if reason else {}


def flow_text(body: str | None, fields: dict[str, Any]) -> str:
    """A completed WhatsApp Flow as a task shows it: its answers, one `field: value` each."""
    answers = "; ".join(f"{name}: {_answer(value)}" for name, value in fields.items())
    return f"[form] {answers}" if answers else f"[form] {body or 'sent'}"


def _answer(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_answer(item) for item in value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_answer(v)}" for k, v in value.items()) + "}"
    return str(value)


_READERS = {
    "location": _location_text,
    "contacts": _contacts_text,
    "reaction": _reaction_text,
    "order": _order_text,
}

"""Sending to customers on WhatsApp through pywa: free text inside the 24-hour customer-service
window, the configured approved template outside it."""

from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from bot.graph_transport import pywa_http_client
from bot.services import Services
from bot.settings import Settings
from notifiers.errors import PermanentDeliveryError, TransientDeliveryError
from store.models import Contact, Message, OutboxMessage
from store.types import utcnow

WINDOW = timedelta(hours=24)


class OutsideWindow(Exception):
    """Outside the 24 h window with no `out_of_window_template` configured: cannot send."""


def http_session(settings: Settings) -> httpx.Client:
    """The httpx client pywa sends with; `WHATSAPP_API_BASE_URL` redirects Graph API calls."""
    if settings.whatsapp_api_base_url:
        return pywa_http_client(settings.whatsapp_api_base_url)
    return httpx.Client(timeout=10.0)


def build_whatsapp(settings: Settings, *, session: httpx.Client):
    """A pywa client for `settings` sending through `session` (the caller closes it).

    Customers are addressed by wa_id first (pywa's default prefers the BSUID).
    """
    from pywa import WhatsApp
    from pywa.utils import UserIdentifier

    priority = (UserIdentifier.WA_ID, UserIdentifier.BSUID, UserIdentifier.PARENT_BSUID)
    return WhatsApp(phone_id=settings.whatsapp_phone_id, token=settings.whatsapp_token,
                    session=session, user_identifier_priority=priority)


@dataclass(frozen=True)
class _Send:
    message_id: int | None
    to: str
    text: str
    via: str  # "text" or "template"
    already_sent: str | None


def send_customer_message(services: Services, outbox: OutboxMessage) -> str:
    """Sends a queued customer message (ack, reply, closing) and returns the wamid.

    Records on the outbound Message row which way was used (`via` text/template), the wamid,
    or the Graph API error. Raises TransientDeliveryError (worth retrying) or
    PermanentDeliveryError (e.g. outside the window without a template).
    A message already sent is not sent again: its wamid is returned.
    """
    plan = _plan(services, outbox, now=utcnow())
    if plan.already_sent:
        return plan.already_sent
    try:
        wamid = _send(services, plan)
    except Exception as exc:
        _record(services, plan, error=f"{exc.__class__.__name__}: {exc}")
        raise delivery_error(exc) from exc
    _record(services, plan, wamid=wamid)
    return wamid


def delivery_error(exc: Exception) -> Exception:
    """The delivery error for a failed send: transient (network, 5xx, throttling, 429 with its
    Retry-After) or permanent (bad request, token, outside the window without a template)."""
    from pywa.errors import ThrottlingError, WhatsAppError

    if isinstance(exc, httpx.TransportError):
        return TransientDeliveryError(f"WhatsApp unreachable: {exc}")
    if not isinstance(exc, WhatsAppError):
        return PermanentDeliveryError(str(exc))
    text = f"Graph API error {exc.code}: {exc.message}"
    response = exc.raw_response
    status = response.status_code if response is not None else None
    if isinstance(exc, ThrottlingError) or exc.is_transient or status in (429, 500, 502, 503):
        after = response.headers.get("retry-after", "") if response is not None else ""
        wait = float(after) if after.replace(".", "", 1).isdigit() else None
        return TransientDeliveryError(text, retry_after=wait)
    return PermanentDeliveryError(text)


def _plan(services: Services, outbox: OutboxMessage, *, now: datetime) -> _Send:
    with services.db.transaction() as session:
        message_id = (outbox.payload or {}).get("message_id")
        message = session.get(Message, message_id) if message_id else None
        contact = session.get(Contact, outbox.contact_id) if outbox.contact_id else None
        if contact is None:
            raise PermanentDeliveryError(f"outbox {outbox.id} has no customer to send to")
        to = contact.wa_id or contact.user_id or outbox.payload.get("to")
        inside = contact.last_inbound_at is not None and now - contact.last_inbound_at < WINDOW
        text = (message.text if message else None) or outbox.payload.get("text", "")
        sent = message.provider_message_id if message is not None else None
        return _Send(message_id, str(to), text, "text" if inside else "template", sent)


def _send(services: Services, plan: _Send) -> str:
    session = http_session(services.settings)
    wa = build_whatsapp(services.settings, session=session)
    try:
        if plan.via == "text":
            return wa.send_message(to=plan.to, text=plan.text).id
        template = services.rules.current.out_of_window_template
        if template is None:
            raise OutsideWindow("the customer wrote more than 24 h ago and rules.yaml has no "
                                "out_of_window_template to send instead")
        from pywa.types.templates import BodyText, TemplateLanguage

        return wa.send_template(to=plan.to, name=template.name,
                                language=TemplateLanguage(template.language),
                                params=[BodyText.params(plan.text)]).id
    finally:
        session.close()


def _record(services: Services, plan: _Send, *, wamid: str | None = None,
            error: str | None = None) -> None:
    if plan.message_id is None:
        return
    with services.db.transaction() as session:
        message = session.get(Message, plan.message_id)
        if message is None:
            return
        message.via = plan.via
        if wamid:
            message.provider_message_id, message.status = wamid, "sent"
            message.sent_at, message.error = utcnow(), None
        else:
            message.error = error[:4000] if error else None


def download_media(settings: Settings, media_id: str) -> tuple[bytes, str]:
    """The bytes and mime type of a customer's media (`Message.media_id`), through pywa.

    Raises the pywa/httpx error when the Graph API refuses or is unreachable.
    """
    session = http_session(settings)
    try:
        wa = build_whatsapp(settings, session=session)
        info = wa.get_media_url(media_id)
        return wa.get_media_bytes(info.url), info.mime_type
    finally:
        session.close()

"""Sending to customers on WhatsApp through pywa: free text or reply buttons, or an approved
template for a customer outside the 24-hour customer-service window (the caller decides
which)."""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

import httpx
from pywa import WhatsApp
from pywa.errors import ThrottlingError, WhatsAppError
from pywa.types import Button, Section, SectionList, SectionRow
from pywa.types.templates import BodyText, QuickReplyButton, TemplateLanguage
from pywa.utils import UserIdentifier

from bot.whatsapp.graph_transport import pywa_http_client
from notifiers.errors import PermanentDeliveryError, TransientDeliveryError
from rules import TemplateRef

# Customers are addressed by wa_id first (pywa's default prefers the BSUID).
_ADDRESSING = (UserIdentifier.WA_ID, UserIdentifier.BSUID, UserIdentifier.PARENT_BSUID)


@dataclass(frozen=True)
class WhatsAppSender:
    """The Cloud API for one business phone number; `api_base_url` redirects Graph API calls
    (`WHATSAPP_API_BASE_URL`, e.g. a local fake). Every call raises TransientDeliveryError
    (worth retrying) or PermanentDeliveryError."""

    phone_id: str
    token: str = field(repr=False)  # never in logs
    api_base_url: str | None = None

    def send_text(self, *, to: str, text: str, sender: str | None = None) -> str:
        """Sends free text (inside the window) from the business number `sender` (default:
        `phone_id`); returns the wamid."""
        return self._call(lambda wa: wa.send_message(to=to, text=text, sender=sender).id)

    def send_template(self, *, to: str, template: TemplateRef, text: str,
                      sender: str | None = None, language: str | None = None) -> str:
        """Sends `template` in `language` (default: its first) with `text` as its body
        parameter from `sender` (default: `phone_id`); returns the wamid."""
        language = TemplateLanguage(language or template.language)
        return self._call(lambda wa: wa.send_template(
            to=to, name=template.name, language=language, params=[BodyText.params(text)],
            sender=sender).id)

    def send_buttons(self, *, to: str, text: str, choices: Sequence[tuple[str, str]],
                     sender: str | None = None) -> str:
        """Sends `text` with a reply button per (payload, title) choice (three at most);
        returns the wamid."""
        buttons = [Button(title=title, callback_data=data) for data, title in choices]
        return self._call(lambda wa: wa.send_message(to=to, text=text, buttons=buttons,
                                                     sender=sender).id)

    def send_list(self, *, to: str, text: str, button: str,
                  choices: Sequence[tuple[str, str]], sender: str | None = None) -> str:
        """Sends `text` with a list opened by `button`, a row per (payload, title) choice
        (ten at most); returns the wamid."""
        rows = [SectionRow(title=title, callback_data=data) for data, title in choices]
        choices_list = SectionList(button_title=button, sections=[Section(title=button,
                                                                           rows=rows)])
        return self._call(lambda wa: wa.send_message(to=to, text=text, buttons=choices_list,
                                                     sender=sender).id)

    def send_quick_replies(self, *, to: str, template: TemplateRef, language: str,
                           payloads: Sequence[str], sender: str | None = None) -> str:
        """Sends `template` in `language`, its quick-reply buttons carrying `payloads` in
        order; returns the wamid."""
        params = [QuickReplyButton.params(callback_data=data, index=index)
                  for index, data in enumerate(payloads)]
        return self._call(lambda wa: wa.send_template(
            to=to, name=template.name, language=TemplateLanguage(language), params=params,
            sender=sender).id)

    def download_media(self, media_id: str) -> tuple[bytes, str]:
        """The bytes and mime type of a customer's media (`Message.media_id`)."""
        def fetch(wa: WhatsApp) -> tuple[bytes, str]:
            info = wa.get_media_url(media_id)
            return wa.get_media_bytes(info.url), info.mime_type

        return self._call(fetch)

    def _call(self, call: Callable[[WhatsApp], object]):
        with _translated_errors():
            return call(self._client)

    @cached_property
    def _client(self) -> WhatsApp:
        """One client for the sender's life (httpx clients are thread-safe): building one
        costs ~50 ms of CPU (its HTTP client's TLS context), and a kept one reuses its
        connections. Its session is its own: pywa refuses one that already carries
        Authorization."""
        session = (pywa_http_client(self.api_base_url) if self.api_base_url
                   else httpx.Client(timeout=10.0))
        return WhatsApp(phone_id=self.phone_id, token=self.token, session=session,
                        user_identifier_priority=_ADDRESSING)


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        raise delivery_error(exc) from exc


def delivery_error(exc: Exception) -> Exception:
    """The delivery error for a failed call: transient (network, 5xx, throttling, 429 with its
    Retry-After) or permanent (bad request, token, anything else)."""
    if isinstance(exc, TransientDeliveryError | PermanentDeliveryError):
        return exc
    if isinstance(exc, httpx.TransportError):
        return TransientDeliveryError(f"WhatsApp unreachable: {exc}")
    if not isinstance(exc, WhatsAppError):
        return PermanentDeliveryError(f"{exc.__class__.__name__}: {exc}")
    text = f"Graph API error {exc.code}: {exc.message}"
    response = exc.raw_response
    status = response.status_code if response is not None else None
    if isinstance(exc, ThrottlingError) or exc.is_transient or status in (429, 500, 502, 503):
        after = response.headers.get("retry-after", "") if response is not None else ""
        wait = float(after) if after.replace(".", "", 1).isdigit() else None
        return TransientDeliveryError(text, retry_after=wait)
    return PermanentDeliveryError(text)

"""Telegram adapter: HTML cards with an inline keyboard, and a Bot API sender for the worker."""

from __future__ import annotations

import asyncio
import html
import re
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter

from notifiers.channels import CardRef, Channel, Recipient
from notifiers.errors import PermanentDeliveryError, TransientDeliveryError
from notifiers.notifications import Notification

CALLBACK_DATA = re.compile(r"^(?P<verb>[a-z_]+):(?P<ref>T-\d+)$")
MAX_CALLBACK_BYTES = 64
MAX_TEXT = 4096


def callback_data(verb: str, ref: str) -> str:
    """`accept:T-12`; raises ValueError beyond Telegram's 64 bytes."""
    data = f"{verb}:{ref}"
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data {data!r} is longer than {MAX_CALLBACK_BYTES} bytes")
    return data


def parse_callback_data(value: str | None) -> tuple[str, str] | None:
    """(verb, ref) of an opsbot button, or None for anything else."""
    found = CALLBACK_DATA.match(value or "")
    return (found["verb"], found["ref"]) if found else None


def render_telegram(notification: Notification) -> dict[str, Any]:
    """`{"text": html, "parse_mode": "HTML", "reply_markup": InlineKeyboardMarkup | None}`."""
    lines = [f"<b>{html.escape(notification.title)}</b>"]
    lines += [f"<b>{html.escape(k)}:</b> {html.escape(v)}" for k, v in notification.fields]
    if notification.text:
        lines.append(f"<blockquote>{html.escape(notification.text)}</blockquote>")
    if notification.status_line:
        lines.append(f"<i>{html.escape(notification.status_line)}</i>")
    markup = None
    if notification.buttons and notification.ref:
        row = [
            InlineKeyboardButton(b.label, callback_data=callback_data(b.verb, notification.ref))
            for b in notification.buttons
        ]
        markup = InlineKeyboardMarkup([row])
    return {"text": "\n".join(lines)[:MAX_TEXT], "parse_mode": ParseMode.HTML,
            "reply_markup": markup}


def bot_api_url(base_url: str, kind: str = "bot") -> str:
    """The root python-telegram-bot appends the token to (`kind` "file" for downloads)."""
    return f"{base_url.rstrip('/')}/{'file/bot' if kind == 'file' else 'bot'}"


def chat_id_of(address: str) -> int | str:
    """The Bot API chat id of an address: a number (`-100123`), else the text (`@channel`)."""
    return int(address) if address.lstrip("-").isdigit() else address


@dataclass(frozen=True)
class TelegramSender:
    """Sends and edits cards with the Bot API (sync wrapper: it runs in the RQ worker).

    A `ChannelSender`: an agent's private chat and a team's group are both chats to it.
    """

    channel: ClassVar[str] = Channel.TELEGRAM
    token: str = field(repr=False)  # never in logs
    base_url: str  # the Bot API host, `TELEGRAM_API_BASE_URL`

    def bot(self) -> Bot:
        """A Bot API client for this token and host (built per call: nothing at import)."""
        return Bot(self.token, base_url=bot_api_url(self.base_url))

    def send(self, recipient: Recipient, card: Notification) -> CardRef:
        """Sends `card` to the recipient's chat; returns (chat id, message id).

        Raises TransientDeliveryError or PermanentDeliveryError.
        """
        chat_id, rendered = chat_id_of(recipient.address), render_telegram(card)

        async def call(bot: Bot):
            return await bot.send_message(chat_id=chat_id, **rendered)

        message = self._run(call)
        return CardRef(chat=str(message.chat_id), message=str(message.message_id))

    def update(self, ref: CardRef, card: Notification) -> None:
        """Replaces the text and keyboard of the card sent as `ref`. Raises like `send`;
        an edit that changes nothing is no error."""
        chat_id, rendered = chat_id_of(ref.chat), render_telegram(card)

        async def call(bot: Bot):
            return await bot.edit_message_text(chat_id=chat_id, message_id=int(ref.message),
                                               **rendered)

        try:
            self._run(call)
        except PermanentDeliveryError as exc:
            # PTB capitalises the API's "message is not modified": compare without case.
            if "message is not modified" not in str(exc).lower():
                raise

    def _run(self, call: Callable[[Bot], Awaitable[Any]]) -> Any:
        async def main():
            bot = self.bot()
            await bot.initialize()
            try:
                return await call(bot)
            finally:
                await bot.shutdown()

        with _translated_errors():
            return asyncio.run(main())


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except RetryAfter as error:
        with warnings.catch_warnings():  # PTB 22 warns that this becomes a timedelta
            warnings.simplefilter("ignore")
            wait = error.retry_after
        seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
        raise TransientDeliveryError("Telegram rate limit", retry_after=seconds) from error
    except (BadRequest, Forbidden, InvalidToken) as error:
        raise PermanentDeliveryError(f"Telegram refused: {error.message}") from error
    except NetworkError as error:  # includes timeouts and 5xx answers
        raise TransientDeliveryError(f"Telegram unreachable: {error.message}") from error

"""Telegram adapter: HTML cards with an inline keyboard, and a Bot API sender for the worker."""

from __future__ import annotations

import asyncio
import html
import re
import threading
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any, ClassVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter

from notifiers.channels import CardRef, Channel, Recipient
from notifiers.errors import PermanentDeliveryError, TransientDeliveryError
from notifiers.notifications import Notification
from notifiers.texts import shorten

LOOP_THREAD = "opsbot-telegram"  # the thread of the sender's event loop (bot.worker.cpu counts it)
CALLBACK_DATA = re.compile(r"^(?P<verb>[a-z_]+):(?P<ref>T-\d+)$")
MAX_CALLBACK_BYTES = 64
MAX_TEXT = 4096  # a message's text, in UTF-16 code units
MAX_CALLBACK_TEXT = 200  # answerCallbackQuery's text
# Room for the lines of a card other than the customer's text (which takes what is left).
_TITLE_ROOM, _FIELD_ROOM, _STATUS_ROOM = 600, 300, 300


def escape_html(text: str) -> str:
    """`text` safe inside Telegram HTML: `&`, `<` and `>` escaped (quotes need not be)."""
    return html.escape(text, quote=False)


def fit_text(text: str, limit: int = MAX_TEXT) -> str:
    """Plain `text` (no parse mode: a command answer) cut on a character boundary to `limit`
    UTF-16 units, as Telegram counts."""
    return shorten(text, limit, size=_utf16_len)


def callback_answer_text(text: str) -> str:
    """A button's answer (answerCallbackQuery), cut to its 200 characters."""
    return fit_text(text, MAX_CALLBACK_TEXT)


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
    """`{"text": html, "parse_mode": "HTML", "reply_markup": InlineKeyboardMarkup | None}`.

    Every piece is cut before it is escaped, so the HTML is well-formed and at most MAX_TEXT
    long: the title, fields and status line within their room, the text within what is left.
    """
    markup = None
    if notification.buttons and notification.ref:
        row = [
            InlineKeyboardButton(b.label, callback_data=callback_data(b.verb, notification.ref))
            for b in notification.buttons
        ]
        markup = InlineKeyboardMarkup([row])
    return {"text": _card_html(notification), "parse_mode": ParseMode.HTML,
            "reply_markup": markup}


def _card_html(notification: Notification) -> str:
    room = _Room()
    title = room.take(_tagged("b", notification.title, min(_TITLE_ROOM, room.line)))
    status = room.take(_tagged("i", notification.status_line or "",
                               min(_STATUS_ROOM, room.line)))
    fields = [room.take(_field(label, value, min(_FIELD_ROOM, room.line), url))
              for label, value, url in notification.linked_fields()]
    text = room.take(_tagged("blockquote", notification.text or "", room.line))
    return "\n".join(line for line in (title, *fields, text, status) if line)


@dataclass
class _Room:
    """What is left of MAX_TEXT while a card's lines are cut to fit (a line after the first
    costs its newline too)."""

    left: int = MAX_TEXT + 1

    @property
    def line(self) -> int:
        """The room of the next line."""
        return self.left - 1

    def take(self, line: str) -> str:
        if line:
            self.left -= _utf16_len(line) + 1
        return line


def _tagged(tag: str, raw: str, room: int) -> str:
    """`<tag>raw</tag>` with `raw` cut to fit `room`; "" when `raw` is empty or not even a
    character of it fits."""
    space = room - (len(tag) * 2 + 5)
    if not raw or space < 1:
        return ""
    return f"<{tag}>{_escaped_cut(raw, space)}</{tag}>"


def _field(label: str, value: str, room: int, url: str | None = None) -> str:
    head = _tagged("b", f"{label}:", min(100, room))
    space = room - _utf16_len(head) - 1
    if not head or space < 1:
        return ""
    if url:
        opening = f'<a href="{html.escape(url, quote=True)}">'
        words = space - _utf16_len(opening) - len("</a>")
        if words >= 1:
            return f"{head} {opening}{_escaped_cut(value, words)}</a>"
    return f"{head} {_escaped_cut(value, space)}"


def _escaped_cut(raw: str, room: int) -> str:
    return escape_html(shorten(raw, max(room, 0), size=_escaped_size))


def _escaped_size(text: str) -> int:
    return _utf16_len(escape_html(text))


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


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

    @cached_property
    def _session(self) -> _BotSession:
        """The Bot API client, built on first use (nothing at import) and kept."""
        return _BotSession(Bot(self.token, base_url=bot_api_url(self.base_url)))

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
        with _translated_errors():
            return self._session.run(call)


class _BotSession:
    """A Bot and the event loop it runs on, on a daemon thread of its own, kept for the
    sender's life: a new Bot per call cost two HTTP clients (~100 ms of CPU for their TLS
    contexts) and a getMe. Calls from several threads (a drain's lanes) run at the same
    time: the Bot API answers in 0.1-0.3 s from afar."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name=LOOP_THREAD, daemon=True).start()
        weakref.finalize(self, self.loop.call_soon_threadsafe, self.loop.stop)

    def run(self, call: Callable[[Bot], Awaitable[Any]]) -> Any:
        async def initialized_call():
            await self.bot.initialize()  # a getMe the first time; at once afterwards
            return await call(self.bot)

        return asyncio.run_coroutine_threadsafe(initialized_call(), self.loop).result()


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

"""Slack adapter: Block Kit cards with buttons, and a Web API sender for the delivery worker."""

from __future__ import annotations

import asyncio
import re
import threading
import weakref
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from notifiers.channels import CardRef, Channel, Recipient
from notifiers.errors import PermanentDeliveryError, TransientDeliveryError
from notifiers.notifications import Notification
from notifiers.texts import shorten

# Button action ids are `opsbot:<verb>:<ref>`; Bolt listens with this pattern.
ACTION_ID = re.compile(r"^opsbot:(?P<verb>[a-z_]+):(?P<ref>T-\d+)$")
SECTION_LIMIT = 3000  # a section block's (and a context element's) text
FIELD_LIMIT = 2000  # a section field's text
FIELDS_PER_SECTION = 10  # a section block holds at most 10 fields: more go to the next one
FALLBACK_LIMIT = 3000  # a card's `text` (Slack's own cut is at 40,000; a preview needs less)
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")  # str.splitlines
LOOP_THREAD = "opsbot-slack"  # the thread of the sender's event loop (bot.worker.cpu counts it)


def escape_slack(text: str) -> str:
    """`text` made safe for any Slack text, mrkdwn or plain: `&`, `<` and `>` escaped, so that
    a customer's words can neither mention (`<!channel>`, `<@U123>`) nor link
    (`<https://evil.example|Click me>`). The one escaper of Slack text: cards and answers."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit_slack(text: str, limit: int) -> str:
    """`text` cut (before escaping, on a character boundary) and escaped, so that the result
    holds at most `limit` characters."""
    return escape_slack(shorten(text, limit, size=_escaped_size))


def action_id(verb: str, ref: str) -> str:
    """The action id of the button that applies `verb` to `ref` (`opsbot:accept:T-12`)."""
    return f"opsbot:{verb}:{ref}"


def parse_action_id(value: str) -> tuple[str, str] | None:
    """(verb, ref) of an opsbot button action id, or None for anything else."""
    found = ACTION_ID.match(value or "")
    return (found["verb"], found["ref"]) if found else None


def render_slack(notification: Notification) -> dict[str, Any]:
    """`{"text": …, "blocks": […]}` for chat.postMessage / chat.update; every piece of text
    escaped and within Slack's limits."""
    blocks: list[dict[str, Any]] = [
        _section(f"*{fit_slack(notification.title, SECTION_LIMIT - 2)}*")]
    fields = [_field(label, value, url) for label, value, url in notification.linked_fields()]
    for start in range(0, len(fields), FIELDS_PER_SECTION):
        blocks.append({"type": "section", "fields": fields[start:start + FIELDS_PER_SECTION]})
    if notification.text:
        blocks.append(_section(_quote(notification.text)))
    if notification.status_line:
        line = fit_slack(notification.status_line, SECTION_LIMIT)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]})
    if notification.buttons and notification.ref:
        blocks.append({"type": "actions", "elements": _buttons(notification)})
    return {"text": fit_slack(notification.plain_text, FALLBACK_LIMIT), "blocks": blocks}


def _field(label: str, value: str, url: str | None = None) -> dict[str, str]:
    head = f"*{fit_slack(label, 100)}*\n"
    if url:  # `<url|words>`: a `|` in the words would end them early
        link = f"<{escape_slack(url)}|"
        words = fit_slack(value.replace("|", "/"), FIELD_LIMIT - len(head) - len(link) - 1)
        return {"type": "mrkdwn", "text": f"{head}{link}{words}>"}
    return {"type": "mrkdwn", "text": head + fit_slack(value, FIELD_LIMIT - len(head))}


def _buttons(notification: Notification) -> list[dict[str, Any]]:
    elements = []
    for button in notification.buttons:
        element = {
            "type": "button",
            "action_id": action_id(button.verb, notification.ref or ""),
            "text": {"type": "plain_text", "text": button.label},
            "value": f"{button.verb}:{notification.ref}",
        }
        if button.style:
            element["style"] = button.style
        elements.append(element)
    return elements


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _quote(text: str) -> str:
    """`text` as a Slack quote (`> ` before each line), cut to fit a section."""
    kept = shorten(text, SECTION_LIMIT - 2, size=_quoted_size)
    return "\n".join(f"> {line}" for line in escape_slack(kept).splitlines() or [""])


def _escaped_size(text: str) -> int:
    return len(escape_slack(text))


def _quoted_size(text: str) -> int:
    return _escaped_size(text) + 2 * sum(map(text.count, _LINE_BREAKS))  # a break: "\n> "


def web_api_url(base_url: str) -> str:
    """The Web API root under a Slack host (`https://slack.com` → `https://slack.com/api/`)."""
    return base_url.rstrip("/") + "/api/"


@dataclass(frozen=True)
class SlackSender:
    """Posts and updates cards with the Web API (sync: it runs in the RQ worker).

    A `ChannelSender`: an agent is reached in their DM (opened once, then cached), a team in
    its channel.
    """

    channel: ClassVar[str] = Channel.SLACK
    token: str = field(repr=False)  # never in logs
    base_url: str  # the Slack host, `SLACK_API_BASE_URL`
    # user id -> DM channel id: conversations.open answers the same channel every time
    dm_channels: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def client(self) -> _LoopClient:
        """The Web API client for this token and host, one for the sender's life: slack_sdk's
        AsyncWebClient on an aiohttp session that keeps its connections (and, on https, its
        TLS sessions) open. The sync WebClient's urllib opened a new connection, built a new
        opener and, on https, made a new TLS handshake for every call: 1.2 ms of CPU a call
        against a local plain-HTTP fake, 0.7 ms this way."""
        return _LoopClient(token=self.token, base_url=web_api_url(self.base_url))

    def send(self, recipient: Recipient, card: Notification) -> CardRef:
        """Posts `card` to the user's DM (or to the team channel); returns (channel id, ts).

        Raises TransientDeliveryError or PermanentDeliveryError.
        """
        if not recipient.address:
            raise PermanentDeliveryError("no Slack user or channel to post to")
        web = self.client
        try:
            with _translated_errors():
                where = recipient.address if recipient.team else self._dm(web, recipient.address)
                posted = web.call(web.api.chat_postMessage(channel=where, **render_slack(card)))
        except (PermanentDeliveryError, TransientDeliveryError):
            if not recipient.team:
                self.dm_channels.pop(recipient.address, None)  # the next attempt opens it again
            raise
        return CardRef(chat=str(posted["channel"]), message=str(posted["ts"]))

    def _dm(self, web: _LoopClient, user: str) -> str:
        """The DM channel id of `user`, opened once per sender."""
        if user not in self.dm_channels:
            opened = web.call(web.api.conversations_open(users=user))
            self.dm_channels[user] = opened["channel"]["id"]
        return self.dm_channels[user]

    def update(self, ref: CardRef, card: Notification) -> None:
        """Replaces the card posted as `ref` (channel id, ts). Raises like `send`."""
        web = self.client
        with _translated_errors():
            web.call(web.api.chat_update(channel=ref.chat, ts=ref.message, **render_slack(card)))


class _LoopClient:
    """An AsyncWebClient for a sync caller: its calls run on an event loop of its own, on a
    daemon thread, where its aiohttp session lives."""

    def __init__(self, *, token: str, base_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=_run, args=(self.loop,), name=LOOP_THREAD, daemon=True).start()
        session = self.call(_new_session())
        self.api = AsyncWebClient(token=token, base_url=base_url, session=session)
        weakref.finalize(self, _close, self.loop, session)  # also when the process exits

    def call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Runs `coroutine` on the client's loop; returns its result or raises its error."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()


def _run(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_forever()
    loop.close()  # stopped by `_close`


async def _new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()  # made on the loop that will use it


def _close(loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession) -> None:
    """Closes the session's connections, then stops its loop (and so its thread)."""
    if loop.is_running():
        asyncio.run_coroutine_threadsafe(session.close(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Turns slack_sdk errors into delivery errors (5xx and 429 are worth a retry)."""
    try:
        yield
    except SlackApiError as error:
        raise _from_api_error(error) from error
    except (SlackClientError, aiohttp.ClientError, OSError) as error:
        raise TransientDeliveryError(f"Slack unreachable: {error}") from error


def _from_api_error(error: SlackApiError):
    response = error.response
    status = response.status_code
    code = response.get("error") if isinstance(response.data, dict) else None
    if status == 429 or code == "ratelimited":
        headers = {key.lower(): value for key, value in response.headers.items()}
        retry_after = float(headers.get("retry-after", 1))
        return TransientDeliveryError("Slack rate limit", retry_after=retry_after)
    if status >= 500 or code in ("fatal_error", "internal_error", "service_unavailable"):
        return TransientDeliveryError(f"Slack answered {status} {code or ''}".strip())
    return PermanentDeliveryError(f"Slack refused: {code or status}")

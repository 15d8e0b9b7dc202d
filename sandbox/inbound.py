"""Signed requests as WhatsApp, Slack and Telegram send them to opsbot.

The demo, the end-to-end suite and the benchmarks use these to play customers and agents
against opsbot's real HTTP endpoints.
"""

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

import httpx

_ids = itertools.count(1)


def whatsapp_signature(body: bytes, app_secret: str) -> str:
    """The `X-Hub-Signature-256` header value Meta computes for `body`."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def slack_signature(body: bytes, signing_secret: str, timestamp: int) -> str:
    """The `X-Slack-Signature` header value (v0) for `body` sent at `timestamp`."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def whatsapp_message(
    *,
    wa_id: str,
    name: str,
    message: dict[str, Any],
    phone_id: str,
    timestamp: int | None = None,
    wamid: str | None = None,
    user_id: str | None = None,
) -> dict[str, Any]:
    """A webhook body carrying one customer message (`message` is its type-specific part,
    e.g. {"type": "text", "text": {"body": "hola"}})."""
    contact: dict[str, Any] = {"profile": {"name": name}, "wa_id": wa_id}
    if user_id:
        contact["user_id"] = user_id
    item = {
        "from": wa_id,
        "id": wamid or f"wamid.SANDBOX{next(_ids):08d}{int(time.time() * 1000)}",
        "timestamp": str(timestamp or int(time.time())),
        **message,
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_id},
        "contacts": [contact],
        "messages": [item],
    }
    return _envelope(value)


def _envelope(value: dict[str, Any]) -> dict[str, Any]:
    change = {"value": value, "field": "messages"}
    return {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [change]}]}


def telegram_command(*, user_id: int, first_name: str, text: str, update_id: int) -> dict:
    """An update carrying a private `/command args` message from `user_id`."""
    command = text.split(maxsplit=1)[0]
    message = {
        "message_id": update_id,
        "date": int(time.time()),
        "chat": {"id": user_id, "type": "private", "first_name": first_name},
        "from": {"id": user_id, "is_bot": False, "first_name": first_name},
        "text": text,
        "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
    }
    return {"update_id": update_id, "message": message}


def telegram_callback(
    *, user_id: int, first_name: str, message: dict, data: str, update_id: int
) -> dict:
    """An update for a press of an inline-keyboard button (`data`) under `message`."""
    query = {
        "id": str(update_id),
        "from": {"id": user_id, "is_bot": False, "first_name": first_name},
        "chat_instance": str(user_id),
        "message": message,
        "data": data,
    }
    return {"update_id": update_id, "callback_query": query}


def slack_command(*, user_id: str, text: str, response_url: str) -> dict[str, str]:
    """The form fields of a `/ops <text>` slash command."""
    return {
        "token": "sandbox",
        "team_id": "T0",
        "channel_id": f"D{user_id}",
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": "/ops",
        "text": text,
        "response_url": response_url,
        "trigger_id": f"trigger.{next(_ids)}",
        "api_app_id": "A0",
    }


def slack_button(
    *, user_id: str, channel: str, message: dict, action: dict, response_url: str
) -> dict:
    """The `block_actions` payload of a click on `action` (a button element of `message`)."""
    clicked = {
        "action_id": action["action_id"],
        "block_id": action.get("block_id", "actions"),
        "value": action.get("value", ""),
        "type": "button",
        "action_ts": f"{time.time():.6f}",
        "text": action.get("text", {"type": "plain_text", "text": ""}),
    }
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower(), "team_id": "T0"},
        "api_app_id": "A0",
        "token": "sandbox",
        "team": {"id": "T0", "domain": "sandbox"},
        "trigger_id": f"trigger.{next(_ids)}",
        "response_url": response_url,
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel},
        "channel": {"id": channel, "name": "directmessage"},
        "message": message,
        "actions": [clicked],
    }


@dataclass
class Sender:
    """Posts signed requests to a running opsbot at `base_url`."""

    base_url: str
    whatsapp_secret: str = ""
    slack_secret: str = ""
    telegram_secret: str = ""
    timeout: float = 10.0

    def whatsapp(self, body: dict | bytes) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": whatsapp_signature(raw, self.whatsapp_secret),
        }
        return self._post("/webhooks/whatsapp", raw, headers)

    def slack_form(self, fields: dict[str, str], *, retry_num: int | None = None,
                   timestamp: int | None = None) -> httpx.Response:
        raw = urlencode(fields).encode()
        ts = timestamp or int(time.time())
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": slack_signature(raw, self.slack_secret, ts),
        }
        if retry_num is not None:
            headers.update({"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "timeout"})
        return self._post("/slack/events", raw, headers)

    def slack_action(self, payload: dict, **kwargs) -> httpx.Response:
        return self.slack_form({"payload": json.dumps(payload)}, **kwargs)

    def telegram(self, update: dict) -> httpx.Response:
        headers = {
            "Content-Type": "application/json",
            "X-Telegram-Bot-Api-Secret-Token": self.telegram_secret,
        }
        return self._post("/telegram/webhook", json.dumps(update).encode(), headers)

    @cached_property
    def _client(self) -> httpx.Client:
        """One client for the sender's life: its connections stay open, and a client costs an
        SSL context (~30 ms of CPU), which `httpx.post` built for every request."""
        return httpx.Client(timeout=self.timeout)

    def _post(self, path: str, raw: bytes, headers: dict[str, str]) -> httpx.Response:
        return self._client.post(self.base_url + path, content=raw, headers=headers)

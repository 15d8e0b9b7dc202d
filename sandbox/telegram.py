"""A local stand-in for the Telegram Bot API as python-telegram-bot 22 calls it.

Answers ``/bot{token}/{method}`` for getMe, sendMessage, editMessageText,
editMessageReplyMarkup, answerCallbackQuery, setWebhook, getWebhookInfo, deleteWebhook,
sendChatAction, deleteMessage and setMyCommands. Unknown methods get a 404 like the real API.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from sandbox.server import FakeServer, Recorded, Reply

_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# PTB form-encodes every parameter, JSON-dumping the ones that are not str. These stay text.
_TEXT_FIELDS = frozenset(
    {
        "text",
        "caption",
        "url",
        "secret_token",
        "callback_query_id",
        "parse_mode",
        "inline_message_id",
        "ip_address",
        "query",
        "description",
        "short_description",
        "name",
        "title",
        "emoji",
        "action",
        "language_code",
    }
)
_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict",
    502: "Bad Gateway",
}
Method = Callable[[dict[str, Any]], Reply]


class FakeTelegram(FakeServer):
    """Fake Telegram Bot API. ``token`` (optional) makes other tokens answer 401.

    Point PTB at it with ``base_url=fake.base_url`` (``…/bot``; PTB appends the token).
    """

    def __init__(self, *, token: str | None = None, delay: float = 0.0) -> None:
        super().__init__(delay=delay)
        self.token = token
        self.webhook: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._next_id: dict[int, int] = {}
        self._messages: dict[tuple[int, int], dict] = {}
        self._named_chats: dict[str, int] = {}

    # test helpers --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The ``base_url`` for ``telegram.Bot`` / ``ApplicationBuilder``."""
        return f"{self.url}/bot"

    def sent_messages(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Parameters of successful sendMessage calls, optionally for one chat."""
        return [
            r.params
            for r in self.calls("sendMessage")
            if r.status == 200 and (chat_id is None or r.params.get("chat_id") == chat_id)
        ]

    def posted(self) -> list[tuple[int, dict[str, Any]]]:
        """(chat id, message) for every message sent so far, as it reads after edits."""
        with self._lock:
            return [(chat, dict(message)) for (chat, _id), message in self._messages.items()]

    def message(self, chat_id: int, message_id: int) -> dict | None:
        """The current state of a message this fake sent (after edits), or None."""
        with self._lock:
            return self._messages.get((chat_id, message_id))

    # routing -------------------------------------------------------------------------------

    def parse_params(self, rec: Recorded) -> dict[str, Any]:
        params = {**rec.query, **(rec.form or {})}
        params = {k: _decode(k, v) for k, v in params.items()}
        params.update(rec.json or {})
        if isinstance(params.get("chat_id"), str) and params["chat_id"].lstrip("-").isdigit():
            params["chat_id"] = int(params["chat_id"])
        return params

    def route(self, rec: Recorded) -> Reply:
        found = _PATH.match(rec.path)
        if not found:
            return self.error_reply(404, None, None)
        if self.token is not None and found["token"] != self.token:
            return self.error_reply(401, None, None)
        method = self._methods().get(found["method"].lower())
        if method is None:
            return self.error_reply(404, None, None)
        return method({**rec.params, "_token": found["token"]})

    def error_reply(self, status: int, retry_after: int | None, body: dict | None) -> Reply:
        if body is not None:
            return Reply(status, body)
        if status == 429:
            wait = retry_after if retry_after is not None else 1
            return Reply(
                429,
                {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {wait}",
                    "parameters": {"retry_after": wait},
                },
            )
        description = _DESCRIPTIONS.get(status, "Internal Server Error")
        return Reply(status, {"ok": False, "error_code": status, "description": description})

    def _methods(self) -> dict[str, Method]:
        methods = {
            "getMe": self._get_me,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_text,
            "editMessageReplyMarkup": self._edit_markup,
            "answerCallbackQuery": self._answer_callback,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._webhook_info,
            "deleteWebhook": self._delete_webhook,
            "sendChatAction": _true,
            "deleteMessage": _true,
            "setMyCommands": _true,
        }
        return {name.lower(): method for name, method in methods.items()}

    # methods -------------------------------------------------------------------------------

    def _get_me(self, params: dict) -> Reply:
        return _ok(_bot_user(params["_token"]))

    def _send_message(self, params: dict) -> Reply:
        if params.get("chat_id") in (None, ""):
            return _bad("chat_id is empty")
        if not params.get("text"):
            return _bad("message text is empty")
        chat = self._chat(params["chat_id"])
        message = {
            "message_id": self._allocate_id(chat["id"]),
            "date": int(time.time()),
            "chat": chat,
            "from": _bot_user(params["_token"]),
            "text": str(params["text"]),
        }
        message.update(_inline_markup(params))
        with self._lock:
            self._messages[(chat["id"], message["message_id"])] = message
        return _ok(message)

    def _edit_text(self, params: dict) -> Reply:
        if not params.get("text"):
            return _bad("message text is empty")
        return self._edit(params, {"text": str(params["text"])})

    def _edit_markup(self, params: dict) -> Reply:
        return self._edit(params, {})

    def _edit(self, params: dict, changes: dict) -> Reply:
        """Edits replace the inline keyboard: leaving out reply_markup removes it (as Telegram)."""
        if params.get("inline_message_id"):
            return _ok(True)
        key = (self._chat(params.get("chat_id"))["id"], _int(params.get("message_id")))
        with self._lock:
            current = self._messages.get(key)
            if current is None:
                return _bad("message to edit not found")
            edited = {k: v for k, v in current.items() if k != "reply_markup"}
            edited.update(changes, **_inline_markup(params))
            if {**edited, "edit_date": None} == {**current, "edit_date": None}:
                return _bad(
                    "message is not modified: specified new message content and reply markup "
                    "are exactly the same as a current content and reply markup of the message"
                )
            edited["edit_date"] = int(time.time())
            self._messages[key] = edited
        return _ok(edited)

    def _answer_callback(self, params: dict) -> Reply:
        if not params.get("callback_query_id"):
            return _bad("query is too old and response timeout expired or query ID is invalid")
        return _ok(True)

    def _set_webhook(self, params: dict) -> Reply:
        secret = params.get("secret_token")
        if secret is not None and not _SECRET.match(str(secret)):
            return _bad("secret token contains unallowed characters")
        with self._lock:
            self.webhook = {k: v for k, v in params.items() if not k.startswith("_")}
        return _ok(True, description="Webhook was set")

    def _webhook_info(self, _params: dict) -> Reply:
        with self._lock:
            hook = dict(self.webhook)
        info = {
            "url": str(hook.get("url") or ""),
            "has_custom_certificate": False,
            "pending_update_count": 0,
            "max_connections": int(hook.get("max_connections") or 40),
        }
        if hook.get("allowed_updates") is not None:
            info["allowed_updates"] = hook["allowed_updates"]
        return _ok(info)

    def _delete_webhook(self, _params: dict) -> Reply:
        with self._lock:
            self.webhook = {}
        return _ok(True, description="Webhook was deleted")

    # helpers -------------------------------------------------------------------------------

    def _allocate_id(self, chat_id: int) -> int:
        with self._lock:
            self._next_id[chat_id] = self._next_id.get(chat_id, 0) + 1
            return self._next_id[chat_id]

    def _chat(self, chat_id: object) -> dict:
        if isinstance(chat_id, int) and chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}
        if isinstance(chat_id, int):
            return {"id": chat_id, "type": "supergroup", "title": f"Group {chat_id}"}
        name = str(chat_id).lstrip("@")
        with self._lock:
            fresh = -1_000_000_000_001 - len(self._named_chats)
            numeric = self._named_chats.setdefault(name, fresh)
        return {"id": numeric, "type": "channel", "title": name, "username": name}


def _decode(key: str, value: str) -> Any:
    if key in _TEXT_FIELDS:
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, dict | list | bool | int | float) else value


def _inline_markup(params: dict) -> dict:
    markup = params.get("reply_markup")
    if isinstance(markup, str):
        markup = json.loads(markup)
    if isinstance(markup, dict) and "inline_keyboard" in markup:
        return {"reply_markup": markup}
    return {}


def _bot_user(token: str) -> dict:
    prefix = token.split(":", 1)[0]
    return {
        "id": int(prefix) if prefix.isdigit() else 1,
        "is_bot": True,
        "first_name": "opsbot",
        "username": "opsbot_test_bot",
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
    }


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _ok(result: Any, **extra: Any) -> Reply:
    return Reply(200, {"ok": True, "result": result, **extra})


def _bad(detail: str) -> Reply:
    return Reply(400, {"ok": False, "error_code": 400, "description": f"Bad Request: {detail}"})


def _true(_params: dict) -> Reply:
    return _ok(True)

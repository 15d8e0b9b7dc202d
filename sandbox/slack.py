"""A local stand-in for the Slack Web API as slack_sdk's AsyncWebClient calls it.

Answers ``/api/{method}`` for auth.test, chat.postMessage, chat.update, chat.postEphemeral,
conversations.open, users.info, views.open/update/publish, and ``POST /response/{id}`` as a
``response_url``. Unknown methods get ``{"ok": false, "error": "unknown_method"}``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from sandbox.server import FakeServer, Recorded, Reply

_JSON_FIELDS = ("blocks", "attachments", "view", "metadata")
Method = Callable[[dict[str, Any]], dict[str, Any]]


class FakeSlack(FakeServer):
    """Fake Slack Web API. ``token`` (optional) makes other tokens fail with invalid_auth.

    Point a client at it with ``AsyncWebClient(token=..., base_url=fake.api_url)``.
    """

    team_id = "T0"
    bot_user_id = "UBOT"
    bot_id = "B0"

    def __init__(self, *, token: str | None = None, delay: float = 0.0) -> None:
        super().__init__(delay=delay)
        self.token = token
        self._lock = threading.Lock()
        self._last_ts = 0
        self._ids = itertools.count(1)
        self._dms: dict[str, str] = {}
        self._messages: dict[tuple[str, str], dict] = {}
        self._users: dict[str, dict] = {}

    # test helpers --------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """The ``base_url`` for slack_sdk clients (trailing slash included)."""
        return f"{self.url}/api/"

    def response_url(self, response_id: str = "1") -> str:
        """A ``response_url`` served by this fake, to put in simulated interaction payloads."""
        return f"{self.url}/response/{response_id}"

    def add_user(self, user_id: str, name: str, *, email: str = "", tz: str = "UTC") -> None:
        """Make ``users.info`` answer this profile for ``user_id``."""
        with self._lock:
            self._users[user_id] = _user(user_id, name, email, tz)

    def sent_messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Parameters of successful chat.postMessage calls, optionally for one channel."""
        return [
            r.params
            for r in self.calls("chat.postMessage")
            if r.status == 200 and (channel is None or r.params.get("channel") == channel)
        ]

    def posted(self) -> list[tuple[str, dict[str, Any]]]:
        """(channel, message) for every message posted so far, as it reads after edits."""
        with self._lock:
            return [(channel, dict(message)) for (channel, _ts), message in self._messages.items()]

    def responses(self) -> list[Recorded]:
        """Requests made to ``response_url`` routes."""
        return [r for r in self.requests if r.path.startswith("/response/")]

    def dm_channel(self, user_id: str) -> str:
        """The DM channel id (``D…``) this fake uses for ``user_id``."""
        with self._lock:
            if user_id not in self._dms:
                self._dms[user_id] = f"D{len(self._dms) + 1:08d}"
            return self._dms[user_id]

    # routing -------------------------------------------------------------------------------

    def parse_params(self, rec: Recorded) -> dict[str, Any]:
        params = super().parse_params(rec)
        for key in _JSON_FIELDS:  # form-encoded calls carry these as JSON strings
            if isinstance(params.get(key), str):
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(params[key])
        return params

    def route(self, rec: Recorded) -> Reply:
        if rec.path.startswith("/response/") and rec.method == "POST":
            return Reply(200, {"ok": True})
        if not rec.path.startswith("/api/"):
            return Reply(404, {"ok": False, "error": "not_found"})
        auth_error = self._auth_error(rec)
        if auth_error:
            return Reply(200, {"ok": False, "error": auth_error})
        method = self._methods().get(rec.name)
        if method is None:
            return Reply(200, {"ok": False, "error": "unknown_method"})
        return Reply(200, method(rec.params))

    def error_reply(self, status: int, retry_after: int | None, body: dict | None) -> Reply:
        if status == 429:
            headers = {"Retry-After": str(retry_after if retry_after is not None else 1)}
            return Reply(429, body or {"ok": False, "error": "ratelimited"}, headers)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return Reply(status, body or {"ok": False, "error": "fatal_error"}, headers)

    def _auth_error(self, rec: Recorded) -> str | None:
        header = rec.headers.get("authorization", "")
        token = header.removeprefix("Bearer ") if header else rec.params.get("token")
        if not token:
            return "not_authed"
        if self.token is not None and token != self.token:
            return "invalid_auth"
        return None

    def _methods(self) -> dict[str, Method]:
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "conversations.open": self._open,
            "users.info": self._user_info,
            "views.open": self._view,
            "views.update": self._view,
            "views.publish": self._view,
        }

    # methods -------------------------------------------------------------------------------

    def _auth_test(self, _params: dict) -> dict:
        return {
            "ok": True,
            "url": f"{self.url}/",
            "team": "T",
            "user": "opsbot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, params: dict) -> dict:
        channel = self._channel(params.get("channel"))
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            return {"ok": False, "error": "no_text"}
        ts = self._next_ts()
        message = self._message(params, ts)
        with self._lock:
            self._messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _update(self, params: dict) -> dict:
        channel, ts = self._channel(params.get("channel")), str(params.get("ts", ""))
        with self._lock:
            if (channel, ts) not in self._messages:
                return {"ok": False, "error": "message_not_found"}
            message = {**self._message(params, ts), "edited": {"user": self.bot_user_id}}
            self._messages[(channel, ts)] = message
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": message["text"],
            "message": message,
        }

    def _post_ephemeral(self, params: dict) -> dict:
        if not params.get("channel") or not params.get("user"):
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "message_ts": self._next_ts()}

    def _open(self, params: dict) -> dict:
        users = str(params.get("users") or "").split(",")
        if not users[0]:
            return {"ok": False, "error": "users_list_not_supplied"}
        return {"ok": True, "channel": {"id": self.dm_channel(users[0])}}

    def _user_info(self, params: dict) -> dict:
        user_id = str(params.get("user") or "")
        with self._lock:
            user = self._users.get(user_id)
        if user is None and user_id[:1] in ("U", "W"):
            user = _user(user_id, user_id.lower(), "", "UTC")
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": user}

    def _view(self, params: dict) -> dict:
        view = params.get("view")
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        view_id = params.get("view_id") or f"V{next(self._ids):08d}"
        return {
            "ok": True,
            "view": {
                **view,
                "id": view_id,
                "team_id": self.team_id,
                "state": {"values": {}},
                "hash": self._next_ts(),
            },
        }

    # helpers -------------------------------------------------------------------------------

    def _channel(self, channel: object) -> str:
        channel = str(channel or "")
        return self.dm_channel(channel) if channel[:1] in ("U", "W") else channel

    def _next_ts(self) -> str:
        """A unique, increasing Slack timestamp (``seconds.micros``)."""
        with self._lock:
            self._last_ts = max(self._last_ts + 1, time.time_ns() // 1000)
            seconds, micros = divmod(self._last_ts, 1_000_000)
        return f"{seconds}.{micros:06d}"

    def _message(self, params: dict, ts: str) -> dict:
        message = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "team": self.team_id,
            "text": str(params.get("text") or ""),
            "ts": ts,
        }
        for key in ("blocks", "attachments", "thread_ts", "metadata"):
            if params.get(key) is not None:
                message[key] = params[key]
        return message


def _user(user_id: str, name: str, email: str, tz: str) -> dict:
    return {
        "id": user_id,
        "team_id": FakeSlack.team_id,
        "name": name,
        "real_name": name,
        "tz": tz,
        "is_bot": False,
        "deleted": False,
        "profile": {"real_name": name, "display_name": name, "email": email},
    }

"""A local stand-in for a CRM's webhook endpoint (Standard Webhooks).

Records every request it gets and answers 200 unless told otherwise: `answer(503)` for a
receiver that is down, `answer(410)` for one that is gone, `answer(200, hang=2.0)` for one
that is too slow (the sender times out). `verified(secret)` checks every accepted request's
signature with the reference library, as a CRM would.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from standardwebhooks import Webhook

from sandbox.server import FakeServer, Recorded, Reply


class FakeReceiver(FakeServer):
    """A webhook receiver; `status` and `hang` (seconds slept before answering) say how it
    answers from now on."""

    def __init__(self, *, status: int = 200, hang: float = 0.0) -> None:
        super().__init__()
        self._answer_lock = threading.Lock()
        self.status, self.hang = status, hang

    def answer(self, status: int, *, hang: float = 0.0) -> None:
        """Answer every following request with `status`, after `hang` seconds."""
        with self._answer_lock:
            self.status, self.hang = status, hang

    def route(self, rec: Recorded) -> Reply:
        with self._answer_lock:
            status, hang = self.status, self.hang
        if hang:
            time.sleep(hang)
        return Reply(status, {"ok": 200 <= status < 300})

    def error_reply(self, status: int, retry_after: int | None, body: dict | None) -> Reply:
        return Reply(status, body or {"error": "scripted failure"})

    def accepted(self) -> list[Recorded]:
        """The requests answered with a 2xx, oldest first."""
        return [r for r in self.requests if 200 <= r.status < 300]

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """The payloads of the accepted requests, each checked with `secret` (raises
        standardwebhooks' WebhookVerificationError on a bad signature)."""
        webhook = Webhook(secret)
        return [webhook.verify(r.body, r.headers) for r in self.accepted()]

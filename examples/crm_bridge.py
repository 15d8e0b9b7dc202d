"""A reference bridge between opsbot and a CRM: copy it, point it at your CRM, deploy it.

    python examples/crm_bridge.py --listen 127.0.0.1:8700 --opsbot https://ops.example.com \\
        --crm https://crm.example.com/api

with OPSBOT_API_KEY (a key with the scopes contacts:write and tasks:read) and
OPSBOT_WEBHOOK_SECRET (the `whsec_…` secret `opsbot webhooks add` printed) in the environment.

Two directions:

- **opsbot → CRM**: opsbot posts its events (Standard Webhooks) to `POST /opsbot` here. Each
  one is verified with the `standardwebhooks` reference library (a wrong signature or a
  timestamp older than 5 minutes is refused with 401), then mirrored: every `task.*` event
  upserts the task as a deal (`PUT {crm}/deals/{ref}`), `contact.updated` the contact. A
  redelivered event (same `webhook-id`) is acknowledged and not applied twice.
- **CRM → opsbot**: every few seconds the bridge asks the CRM for the status changes its users
  made (`GET {crm}/changes?after=N`) and sets them in opsbot (`PATCH /api/v1/contacts/{wa_id}`
  with `crm_status` and `external_ids`), with the change's id as the `Idempotency-Key`: a
  retry after a timeout never applies a change twice. The next WhatsApp message of that
  customer is read by the rules with the new status.

The CRM's side here (`/deals`, `/contacts`, `/changes`) is a small made-up REST API: replace
`CrmClient` with your CRM's client (HubSpot, Salesforce, Pipedrive…); nothing else changes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from standardwebhooks import Webhook, WebhookVerificationError

log = logging.getLogger("crm_bridge")
SEEN_IDS = 10_000  # webhook ids remembered to drop redeliveries


class CrmClient:
    """The CRM's API, as far as the bridge needs it."""

    def __init__(self, base_url: str, client: httpx.Client) -> None:
        self.base_url, self.client = base_url.rstrip("/"), client

    def upsert_deal(self, ref: str, deal: dict[str, Any]) -> None:
        self.client.put(f"{self.base_url}/deals/{ref}", json=deal).raise_for_status()

    def upsert_contact(self, wa_id: str, contact: dict[str, Any]) -> None:
        self.client.put(f"{self.base_url}/contacts/{wa_id}", json=contact).raise_for_status()

    def changes(self, after: int) -> list[dict[str, Any]]:
        """Status changes made in the CRM after change `after`: [{id, wa_id, crm_status,
        crm_id}], oldest first."""
        answer = self.client.get(f"{self.base_url}/changes", params={"after": after})
        answer.raise_for_status()
        return answer.json()["changes"]


class Bridge:
    """Mirrors opsbot's events into the CRM and the CRM's status changes into opsbot."""

    def __init__(self, *, opsbot_url: str, api_key: str, secret: str, crm: CrmClient,
                 client: httpx.Client) -> None:
        self.api = opsbot_url.rstrip("/") + "/api/v1"
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.webhook, self.crm, self.client = Webhook(secret), crm, client
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.last_change = 0
        self.lock = threading.Lock()

    # --- opsbot -> CRM ---------------------------------------------------------------------

    def receive(self, body: bytes, headers: dict[str, str]) -> int:
        """Handles one webhook delivery; returns the HTTP status to answer."""
        try:
            event = self.webhook.verify(body, headers)
        except WebhookVerificationError:
            log.warning("refused a webhook with a bad signature")
            return 401
        with self.lock:
            message_id = headers.get("webhook-id", "")
            if message_id in self.seen:
                return 200  # a redelivery: applied already
            self.apply(event)
            self.seen[message_id] = None
            while len(self.seen) > SEEN_IDS:
                self.seen.popitem(last=False)
        return 200

    def apply(self, event: dict[str, Any]) -> None:
        data = event["data"]
        if event["type"].startswith("task."):
            task = data["task"]
            contact = task.get("contact") or {}
            self.crm.upsert_deal(task["ref"], {
                "title": task.get("title"), "status": task.get("status"),
                "priority": task.get("priority"), "team": task.get("team"),
                "owner": task.get("assignee"), "customer": contact.get("wa_id"),
                "last_event": event["type"], "at": event["timestamp"]})
        elif event["type"] == "contact.updated" and data.get("contact"):
            contact = data["contact"]
            if contact.get("wa_id"):
                self.crm.upsert_contact(contact["wa_id"], {
                    "name": contact.get("name"), "crm_status": contact.get("crm_status")})

    # --- CRM -> opsbot ---------------------------------------------------------------------

    def sync_changes(self) -> int:
        """Pushes the CRM's new status changes to opsbot; returns how many."""
        changes = self.crm.changes(self.last_change)
        for change in changes:
            body = {"crm_status": change["crm_status"]}
            if change.get("crm_id"):
                body["external_ids"] = {"crm": str(change["crm_id"])}
            answer = self.client.patch(
                f"{self.api}/contacts/{change['wa_id']}", json=body,
                headers={**self.headers, "Idempotency-Key": f"crm-change-{change['id']}"})
            if answer.status_code == 404:
                log.info("change %s: opsbot does not know that customer yet", change["id"])
            else:
                answer.raise_for_status()
            self.last_change = change["id"]
        return len(changes)


def serve(bridge: Bridge, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server with `POST /opsbot` (opsbot's webhooks); call serve_forever on it."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, 1_000_000))
            status = 404
            if self.path == "/opsbot":
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = bridge.receive(body, headers)
            answer = json.dumps({"ok": status == 200}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug(format, *args)

    return ThreadingHTTPServer((host, port), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:8700")
    parser.add_argument("--opsbot", required=True, help="opsbot's base URL")
    parser.add_argument("--crm", required=True, help="the CRM API's base URL")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between CRM polls")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    client = httpx.Client(timeout=10)
    bridge = Bridge(opsbot_url=args.opsbot, api_key=os.environ["OPSBOT_API_KEY"],
                    secret=os.environ["OPSBOT_WEBHOOK_SECRET"],
                    crm=CrmClient(args.crm, client), client=client)
    host, port = args.listen.rsplit(":", 1)
    server = serve(bridge, host, int(port))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log.info("listening on http://%s/opsbot", args.listen)
    stop = threading.Event()
    while not stop.wait(args.every):
        try:
            bridge.sync_changes()
        except httpx.HTTPError as exc:
            log.warning("CRM sync failed (%s); next try in %s s", exc, args.every)


if __name__ == "__main__":
    main()

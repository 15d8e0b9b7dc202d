"""A CRM-like store for the bridge's end-to-end test: deals and contacts written by the
bridge, and status changes made by (simulated) CRM users, read back by the bridge."""

from __future__ import annotations

import threading
from typing import Any

from sandbox.server import FakeServer, Recorded, Reply


class FakeCRM(FakeServer):
    """`PUT /deals/{ref}`, `PUT /contacts/{wa_id}`, `GET /changes?after=N`; `set_status`
    stands for a CRM user changing a customer's status."""

    def __init__(self) -> None:
        super().__init__()
        self._data_lock = threading.Lock()
        self.deals: dict[str, dict[str, Any]] = {}
        self.deal_history: dict[str, list[str]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self._changes: list[dict[str, Any]] = []

    def set_status(self, wa_id: str, status: str, *, crm_id: int) -> None:
        with self._data_lock:
            self._changes.append({"id": len(self._changes) + 1, "wa_id": wa_id,
                                  "crm_status": status, "crm_id": crm_id})

    def route(self, rec: Recorded) -> Reply:
        parts = rec.path.strip("/").split("/")
        with self._data_lock:
            if rec.method == "PUT" and parts[0] == "deals":
                self.deals[parts[1]] = rec.json
                self.deal_history.setdefault(parts[1], []).append(rec.json["status"])
                return Reply(200, {"ok": True})
            if rec.method == "PUT" and parts[0] == "contacts":
                self.contacts[parts[1]] = rec.json
                return Reply(200, {"ok": True})
            if rec.method == "GET" and parts[0] == "changes":
                after = int(rec.query.get("after", 0))
                return Reply(200, {"changes": [c for c in self._changes if c["id"] > after]})
        return Reply(404, {"error": "no such resource"})

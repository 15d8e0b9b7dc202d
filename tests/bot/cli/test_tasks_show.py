"""`opsbot tasks show` has the conversation, the CRM facts and the routing reasons (issue 15
item 4)."""

import json
from datetime import UTC, datetime

from typer.testing import CliRunner

from bot.cli import app
from store.db import Database
from store.events import Audit, record_event
from store.lifecycle import SYSTEM
from store.messages import record_inbound_message
from store.models import Contact
from store.tasks import create_task

AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
runner = CliRunner()


def test_tasks_show_has_the_conversation_and_the_routing(monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    database = Database(database_url)
    with database.transaction() as session:
        contact = Contact(wa_id="34600000001", name="Carla Ruiz", crm_status="vip", tags=["b2b"])
        session.add(contact)
        session.flush()
        task = create_task(session, title="Consulta de disponibilidad — Carla Ruiz",
                           category="sales", priority="normal", actor=SYSTEM,
                           contact_id=contact.id, team="sales")
        record_inbound_message(session, provider_message_id="wamid.1", contact_id=contact.id,
                               task_id=task.id, type="text", text="¿Tenéis la talla 42?",
                               media_id=None, payload={}, at=AT)
        record_event(session, task=task, actor="system", action=Audit.ROUTED, at=AT, details={
            "summary": "assigned to ana: least loaded",
            "candidates": [{"agent": "ana", "chosen": True, "reason": "chosen: least loaded"}]})
    database.dispose()

    shown = json.loads(runner.invoke(app, ["tasks", "show", "T-1", "--json"]).output)
    assert [(m["from"], m["text"]) for m in shown["conversation"]] == [
        ("customer", "¿Tenéis la talla 42?")]
    assert shown["routing"]["summary"] == "assigned to ana: least loaded"
    assert shown["crm"] == {"status": "vip", "tags": ["b2b"]}
    human = runner.invoke(app, ["tasks", "show", "1"]).output
    assert "¿Tenéis la talla 42?" in human and "ana: chosen: least loaded" in human

"""Customer data at rest and a person's rights: a customer writes over signed HTTP, an agent
notes and replies from Telegram; nothing of theirs is in clear in the database; the export
holds everything; the erasure leaves nothing readable, the KPIs and the audit as they were."""

import json
from dataclasses import replace

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app
from sandbox.inbound import telegram_command
from store.models import Contact, Task
from tests.bot.whatsapp_kit import message_body
from tests.bot.world import running_world
from tests.raw_database import stored_bytes

runner = CliRunner()
NAME, NUMBER = "Remedios Quintanilla", "34655443322"
ASKED = "Mi pedido 7781 no ha llegado a la calle Alcalá"
NOTED = "Llamó también por teléfono, muy enfadada"
REPLIED = "Lo reenviamos mañana por mensajero urgente"
IN_CLEAR = (NAME, NUMBER, "7781 no ha llegado", "muy enfadada", "mensajero urgente")


@pytest.fixture
def world(db, redis_url, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("WHATSAPP_TOKEN", raising=False)
    with running_world(db, redis_url, tmp_path) as built:
        yield built


def customer_writes(world, text: str, wamid: str) -> None:
    body = message_body({"type": "text", "text": {"body": text}}, wamid=wamid, wa_id=NUMBER,
                        name=NAME)
    sender = replace(world.send, whatsapp_secret="wa-secret")  # the world's app secret
    assert sender.whatsapp(body).status_code == 200
    world.work()


def agent_says(world, text: str, update_id: int) -> None:
    update = telegram_command(user_id=444, first_name="Tina", text=text, update_id=update_id)
    assert world.send.telegram(update).status_code == 200
    world.work()


def cli(*args: str):
    return runner.invoke(app, list(args))


def kpis() -> dict:
    report = json.loads(cli("report", "--json").output)
    report.pop("window")  # until now: later each time
    return report


def test_customer_data_is_sealed_exported_and_erased(world, db):
    customer_writes(world, ASKED, "wamid.GDPR1")
    with db.transaction() as session:
        [task] = session.scalars(select(Task)).all()
        number = task.id
        session.execute(Task.__table__.update().values(assignee_id="tina", status="accepted"))
    agent_says(world, f"/note {number} {NOTED}", 9001)
    agent_says(world, f"/reply {number} {REPLIED}", 9002)

    raw = stored_bytes(db.url)
    assert [text for text in IN_CLEAR if text.encode() in raw] == []

    exported = cli("contacts", "export", NUMBER)
    assert exported.exit_code == 0, exported.output
    document = json.loads(exported.output)
    assert document["contact"]["name"] == NAME and document["contact"]["wa_id"] == NUMBER
    texts = [(m["direction"], m["text"]) for m in document["messages"]]
    assert ("inbound", ASKED) in texts and ("outbound", REPLIED) in texts
    assert [t["ref"] for t in document["tasks"]] == [f"T-{number}"]
    notes = [e["details"].get("text") for e in document["audit_events"] if e["action"] == "note"]
    assert notes == [NOTED]
    assert {"ratings", "media_ids"} <= document.keys()

    before = kpis()
    erased = cli("contacts", "erase", NUMBER, "--reason", "request by email 2026-12-01",
                 "--json")
    assert erased.exit_code == 0, erased.output
    assert json.loads(erased.output)["data_key_destroyed"] is True

    assert kpis() == before
    assert cli("contacts", "export", NUMBER).exit_code == 1
    shown = cli("tasks", "show", str(number), "--json")
    assert shown.exit_code == 0
    assert [text for text in (*IN_CLEAR, ASKED, NOTED, REPLIED) if text in shown.output] == []
    verified = cli("audit", "verify", "--json")
    assert verified.exit_code == 0, verified.output
    assert [e for e in json.loads(cli("tasks", "show", str(number), "--json").output)["events"]
            if e["action"] == "note"][0]["details"]["text"] == "[erased]"

    customer_writes(world, "Hola otra vez", "wamid.GDPR2")  # the same number, a new contact
    with db.transaction() as session:
        contacts = list(session.scalars(select(Contact).order_by(Contact.id)))
    assert [c.erased_at is not None for c in contacts] == [True, False]
    assert contacts[1].wa_id == NUMBER and contacts[0].wa_id is None

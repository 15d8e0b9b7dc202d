"""`opsbot webhooks add|list|disable|deliveries|replay` against a real database."""

import json

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.usecases.webhooks_out import deliver_due
from sandbox.crm import FakeReceiver
from store.db import Database
from store.lifecycle import SYSTEM
from store.tasks import create_task
from store.types import utcnow

runner = CliRunner()


@pytest.fixture
def env(monkeypatch, database_url) -> str:
    monkeypatch.setenv("DATABASE_URL", database_url)
    return database_url


def _invoke(*args: str):
    result = runner.invoke(app, ["webhooks", *args])
    return result


def test_add_list_deliveries_replay_disable(env):
    with FakeReceiver() as receiver:
        added = _invoke("add", receiver.url, "--events", "task.created,task.closed", "--json")
        assert added.exit_code == 0, added.output
        endpoint = json.loads(added.output)
        assert endpoint["id"] and endpoint["secret"].startswith("whsec_")
        assert endpoint["events"] == ["task.created", "task.closed"]
        database = Database(env)
        with database.transaction() as session:
            create_task(session, title="Factura", category="billing", priority="normal",
                        actor=SYSTEM)
        receiver.answer(500)
        deliver_due(database, owner="cli-test", seconds=None, now=utcnow())
        listed = _invoke("deliveries", str(endpoint["id"]), "--json")
        assert listed.exit_code == 0, listed.output
        [delivery] = json.loads(listed.output)
        assert (delivery["type"], delivery["status"], delivery["attempts"]) == (
            "task.created", "pending", 1)
        assert delivery["attempt_log"][0]["status_code"] == 500
        assert "500" in _invoke("deliveries", str(endpoint["id"])).output
        replayed = _invoke("replay", str(delivery["id"]))
        assert replayed.exit_code == 0 and "queued again as delivery" in replayed.output
        receiver.answer(200)
        listing = json.loads(_invoke("list", "--json").output)
        assert [e["url"] for e in listing] == [receiver.url] and "secret" not in listing[0]
        disabled = _invoke("disable", str(endpoint["id"]), "--reason", "CRM moved")
        assert disabled.exit_code == 0 and "CRM moved" in disabled.output
        assert "disabled" in _invoke("list").output
        deliveries = json.loads(_invoke("deliveries", str(endpoint["id"]), "--json").output)
        assert {d["status"] for d in deliveries} == {"cancelled"}
        database.dispose()


def test_refusals_are_one_line(env):
    bad = _invoke("add", "ftp://x", "--events", "task.created")
    assert bad.exit_code == 1 and "http(s)" in bad.output
    unknown = _invoke("add", "https://crm.example/h", "--events", "task.exploded")
    assert unknown.exit_code == 1 and "task.exploded" in unknown.output
    assert _invoke("disable", "42").exit_code == 1
    assert _invoke("replay", "42").exit_code == 1
    assert "no webhook endpoints" in _invoke("list").output

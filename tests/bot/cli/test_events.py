"""`opsbot events failed|retry` on a body that could not be read."""

import json

from typer.testing import CliRunner

from bot.cli import app
from bot.webhooks.whatsapp import event_rows
from store.db import Database
from store.inbound import insert_events

runner = CliRunner()


def test_a_failed_event_is_listed_and_can_be_retried(monkeypatch, database_url, redis_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("WHATSAPP_TOKEN", raising=False)
    database = Database(database_url)
    with database.transaction() as session:
        insert_events(session, rows=event_rows(b"{not json"))
    database.dispose()

    listed = runner.invoke(app, ["events", "failed", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert row["kind"] == "unreadable"
    assert "not JSON" in row["error"]

    text = runner.invoke(app, ["events", "failed"])
    assert "not JSON" in text.output

    retried = runner.invoke(app, ["events", "retry", str(row["id"])])
    assert retried.exit_code == 0, retried.output
    assert "1 event(s) queued again" in retried.output
    assert json.loads(runner.invoke(app, ["events", "failed", "--json"]).output) == []
    assert runner.invoke(app, ["events", "retry"]).exit_code == 2

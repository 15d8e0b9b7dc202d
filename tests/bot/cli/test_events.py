"""`opsbot events failed|retry` on a body that could not be read, WhatsApp's or Telegram's."""

import json

from typer.testing import CliRunner

from bot.cli import app
from bot.webhooks.telegram import UNREADABLE, failed_row
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


def _failed_telegram_update(database_url: str) -> None:
    """An update python-telegram-bot cannot read (its chat is text), kept as the webhook
    keeps it."""
    raw = json.dumps({"update_id": 701, "message": {"message_id": 3, "date": 1767225600,
                                                    "chat": "private", "text": "/tasks"}})
    database = Database(database_url)
    with database.transaction() as session:
        reason = "python-telegram-bot cannot read it: AttributeError: no copy"
        insert_events(session, rows=[failed_row(raw.encode(), 701, UNREADABLE, reason)]
                      + event_rows(b"{not json"))
    database.dispose()


def test_a_failed_telegram_update_is_listed_and_not_retried(monkeypatch, database_url,
                                                             redis_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("WHATSAPP_TOKEN", raising=False)
    _failed_telegram_update(database_url)

    listed = json.loads(runner.invoke(app, ["events", "failed", "--json"]).output)
    telegram, whatsapp = sorted(listed, key=lambda row: row["provider"])
    assert (telegram["provider"], telegram["provider_event_id"], telegram["kind"]) == (
        "telegram", "701", "unreadable")
    text = runner.invoke(app, ["events", "failed"]).output
    [line] = [line for line in text.splitlines() if line.split()[0] == str(telegram["id"])]
    assert "telegram" in line and "python-telegram-bot cannot read it" in line

    refused = runner.invoke(app, ["events", "retry", str(telegram["id"])])
    assert refused.exit_code == 1
    assert "cannot retry telegram updates" in refused.output
    assert f"still failed: {telegram['id']}" in refused.output
    assert "0 event(s) queued again" in refused.output

    every = runner.invoke(app, ["events", "retry", "--all"])
    assert every.exit_code == 0, every.output
    assert "1 event(s) queued again" in every.output  # the WhatsApp one only
    assert "cannot retry telegram updates" in every.output
    still = json.loads(runner.invoke(app, ["events", "failed", "--json"]).output)
    assert [(row["id"], row["provider"]) for row in still] == [(telegram["id"], "telegram")]
    assert whatsapp["provider"] == "whatsapp"

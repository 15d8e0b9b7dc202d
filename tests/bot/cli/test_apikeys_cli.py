"""`opsbot apikeys create|list|revoke`."""

import json

import pytest
from typer.testing import CliRunner

from bot.cli import app
from store.apikeys import find_api_key
from store.db import Database
from tests.notifiers.helpers import RULES

runner = CliRunner()


@pytest.fixture
def database(monkeypatch, database_url, redis_url, tmp_path):
    """The CLI pointed at an empty database and the test rules."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("RULES_PATH", str(rules))
    monkeypatch.delenv("WHATSAPP_TOKEN", raising=False)
    database = Database(database_url)
    yield database
    database.dispose()


def test_create_prints_the_key_once_and_keeps_its_digest(database):
    result = runner.invoke(app, ["apikeys", "create", "crm", "--scopes",
                                 "tasks:read,contacts:write", "--agent", "ana", "--json"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["key"].startswith("opsk_") and len(created["key"]) == 48
    assert (created["scopes"], created["agent"]) == (["contacts:write", "tasks:read"], "ana")
    assert created["key"].startswith(created["prefix"])
    with database.transaction(readonly=True) as session:
        assert find_api_key(session, key=created["key"]).name == "crm"
    with database.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT digest, prefix FROM api_keys").all()
    assert created["key"] not in str(rows)
    listed = runner.invoke(app, ["apikeys", "list", "--json"])
    assert [row["name"] for row in json.loads(listed.output)] == ["crm"]
    assert created["key"] not in listed.output


@pytest.mark.parametrize(("args", "message"), [
    (["--scopes", "tasks:read,tasks:delete"], "unknown scope(s): tasks:delete"),
    (["--scopes", "tasks:read", "--agent", "nobody"], "there is no agent 'nobody'"),
])
def test_create_refuses_with_a_clear_message(database, args, message):
    result = runner.invoke(app, ["apikeys", "create", "crm", *args])
    assert result.exit_code == 1
    assert message in result.output


def test_a_taken_name_is_refused(database):
    assert runner.invoke(app, ["apikeys", "create", "crm", "--scopes", "tasks:read"]).exit_code == 0
    again = runner.invoke(app, ["apikeys", "create", "crm", "--scopes", "tasks:read"])
    assert again.exit_code == 1 and "named 'crm' already" in again.output


def test_revoke_stops_the_key(database):
    created = json.loads(runner.invoke(app, ["apikeys", "create", "old", "--scopes",
                                             "events:read", "--json"]).output)
    result = runner.invoke(app, ["apikeys", "revoke", "old"])
    assert result.exit_code == 0 and "revoked old" in result.output
    with database.transaction(readonly=True) as session:
        assert find_api_key(session, key=created["key"]) is None
    listed = runner.invoke(app, ["apikeys", "list"])
    assert "old" in listed.output and "revoked" in listed.output
    missing = runner.invoke(app, ["apikeys", "revoke", "nope"])
    assert missing.exit_code == 1 and "no API key named 'nope'" in missing.output

"""Where a process gets its keys: the environment, or the key file beside a SQLite database;
PostgreSQL refuses to start without them. `opsbot keys generate|rotate`."""

import json
import stat

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.core.bootstrap import configure_keys
from bot.core.settings import ConfigError, Settings
from store import keys
from store.contacts import upsert_contact
from store.types import utcnow
from tests.conftest import TEST_DATA_KEYS, TEST_INDEX_KEY

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_keys_in_the_environment(monkeypatch):
    monkeypatch.delenv("OPSBOT_DATA_KEYS")
    monkeypatch.delenv("OPSBOT_INDEX_KEY")


def settings(url: str, **values) -> Settings:
    return Settings(_env_file=None, database_url=url, **values)


def test_a_new_sqlite_database_gets_an_owner_only_key_file_once(tmp_path):
    said = []
    url = f"sqlite:///{tmp_path / 'var' / 'opsbot.db'}"
    configure_keys(settings(url), say=said.append)
    key_file = tmp_path / "var" / "opsbot.keys"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(said) == 1 and str(key_file) in said[0] and "back it up" in said[0]
    first = keys.current()
    configure_keys(settings(url), say=said.append)
    assert keys.current() == first and len(said) == 1


def test_postgresql_refuses_to_start_without_keys():
    with pytest.raises(ConfigError, match="OPSBOT_DATA_KEYS is not set.*PostgreSQL needs them"):
        configure_keys(settings("postgresql+psycopg://u@127.0.0.1/x"))


def test_half_of_the_keys_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'opsbot.db'}"
    with pytest.raises(ConfigError, match="OPSBOT_INDEX_KEY is not set"):
        configure_keys(settings(url, opsbot_data_keys=TEST_DATA_KEYS))


def test_a_lost_key_file_is_not_replaced_when_data_is_sealed(tmp_path):
    from store.db import Database, upgrade_database

    url = f"sqlite:///{tmp_path / 'opsbot.db'}"
    configure_keys(settings(url), say=lambda line: None)
    upgrade_database(url)
    database = Database(url)
    with database.transaction() as session:
        upsert_contact(session, wa_id="34600", user_id=None, now=utcnow())
    database.dispose()
    (tmp_path / "opsbot.keys").unlink()
    with pytest.raises(ConfigError, match="key file .* is missing.*restore it"):
        configure_keys(settings(url))


def test_generate_prints_keys_that_parse():
    result = runner.invoke(app, ["keys", "generate", "--json"])
    assert result.exit_code == 0
    generated = json.loads(result.output)
    parsed = keys.parse_keys(generated["data_key"], generated["index_key"])
    assert parsed.primary == generated["data_key"].split(":")[0]


def test_rotate_through_the_cli(db, monkeypatch):
    with db.transaction() as session:
        upsert_contact(session, wa_id="34600111", user_id=None, name="Ana", now=utcnow())
    new_entry = keys.new_master_entry()
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("OPSBOT_DATA_KEYS", f"{new_entry},{TEST_DATA_KEYS}")
    monkeypatch.setenv("OPSBOT_INDEX_KEY", TEST_INDEX_KEY)
    result = runner.invoke(app, ["keys", "rotate", "--json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert counts["data_keys_rewrapped"] == 1 and counts["master_key"] == new_entry.split(":")[0]
    again = json.loads(runner.invoke(app, ["keys", "rotate", "--json"]).output)
    assert again["data_keys_rewrapped"] == 0


def test_a_master_key_dropped_too_early_is_one_line_not_a_traceback(db, monkeypatch):
    with db.transaction() as session:
        upsert_contact(session, wa_id="34600222", user_id=None, name="Ana", now=utcnow())
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("OPSBOT_DATA_KEYS", keys.new_master_entry())  # the old one is gone
    monkeypatch.setenv("OPSBOT_INDEX_KEY", TEST_INDEX_KEY)
    result = runner.invoke(app, ["keys", "rotate"])
    assert result.exit_code == 2
    assert "is not in OPSBOT_DATA_KEYS" in result.output and "Traceback" not in result.output

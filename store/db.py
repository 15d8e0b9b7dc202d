"""Engines, sessions and migrations: the one place that opens connections and commits."""

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.pool import NullPool

from store.errors import ConcurrentUpdate

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and write-ahead locking."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_immediate)
    return engine


def _configure_sqlite(dbapi_connection, _record) -> None:
    # Autocommit at the driver level so that SQLAlchemy's "begin" event decides how to begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _begin_immediate(connection) -> None:
    # SQLite has one writer: taking the write lock up front avoids the deadlock that a
    # read-then-write transaction meets when another connection wrote in between. Reads
    # (`transaction(readonly=True)`) begin deferred so that they never wait for writers.
    if connection.get_execution_options().get("readonly"):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


WRITER_WAIT = 30  # seconds, as SQLite's busy timeout


class WriterLock:
    """SQLite's one writer, queued in the kernel: a lock per process plus an flock on a file
    beside the database, held for a whole write transaction.

    Why: SQLite's busy handler polls with sleeps that grow to 100 ms, so a writer waiting
    behind another often slept on long after the database was free (a worker spent a fifth
    of its time there under load); the kernel wakes an flock waiter at once.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pid = -1  # a forked child opens its own file: flocks follow the open file

    @contextmanager
    def held(self) -> Iterator[None]:
        if self._pid != os.getpid():
            self._pid, self._threads = os.getpid(), threading.Lock()
            self._file = open(self.path, "a")  # noqa: SIM115 - kept open for the process
        if not self._threads.acquire(timeout=WRITER_WAIT):
            raise TimeoutError(f"another writer held {self.path.name} for {WRITER_WAIT} s")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._file, fcntl.LOCK_UN)
        finally:
            self._threads.release()


def _writer_lock(url: str) -> WriterLock | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return WriterLock(Path(f"{parsed.database}.writer-lock"))


class Database:
    """One engine and its session factory; `transaction()` is how callers change data."""

    def __init__(self, url: str, **engine_kwargs) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self._writer = _writer_lock(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = sessionmaker(
            self.engine.execution_options(readonly=True), expire_on_commit=False
        )

    @contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[Session]:
        """A session committed when the block ends, rolled back when it raises.

        `readonly` sessions only read (on SQLite they do not take the write lock). Raises
        ConcurrentUpdate when another transaction changed a task in between.
        """
        queued = nullcontext() if readonly or self._writer is None else self._writer.held()
        with queued, self._session(readonly) as session:
            yield session

    @contextmanager
    def _session(self, readonly: bool) -> Iterator[Session]:
        session = (self._readers if readonly else self._sessions)()
        try:
            yield session
            session.commit()
        except StaleDataError as exc:
            session.rollback()
            message = "the task was changed by someone else just now; try again"
            raise ConcurrentUpdate(message) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        """Raises when the database does not answer."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


MIGRATION_LOCK = 7_246_001  # pg_advisory_lock key held while opsbot migrates


def upgrade_database(url: str, revision: str = "heads") -> None:
    """Migrates the database at `url` to `revision` (idempotent).

    On PostgreSQL an advisory lock serialises migrations, so that several web and worker
    processes starting together on a fresh database do not race each other.
    """
    if make_url(url).get_backend_name() != "postgresql":
        make_engine(url).dispose()  # creates the folder under var/ for SQLite
        command.upgrade(alembic_config(url), revision)
        return
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        try:
            command.upgrade(alembic_config(url), revision)
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
    engine.dispose()

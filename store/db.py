"""Engines, sessions and migrations: the one place that opens connections and commits."""

import fcntl
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import TypeVar

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.pool import NullPool

from store.crypto import attach, reading
from store.errors import ConcurrentUpdate

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for `url`. PostgreSQL gets timeouts, TCP keepalives and pool pre-ping (see
    below); SQLite gets WAL, a busy timeout, write-ahead locking and an owner-only file. SQL
    parameters (customers' numbers and texts) never appear in logs or error messages."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return _postgres_engine(parsed, **kwargs)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, hide_parameters=True, **kwargs)
    if parsed.database and parsed.database != ":memory:" and not parsed.query.get("uri"):
        create_owner_only(Path(parsed.database))
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                           hide_parameters=True, **kwargs)
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


def create_owner_only(path: Path) -> None:
    """Creates the database file (0600) and the folders missing above it (0700), so that
    customer data is not readable by the machine's other users. SQLite gives its -wal and -shm
    files the database file's mode. Existing files and folders are left as they are."""
    for folder in reversed(path.parents):
        if not folder.exists():
            folder.mkdir(mode=0o700, exist_ok=True)
    with suppress(FileExistsError):  # made by another process starting at the same time
        # An empty file is a valid SQLite database.
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


# --- PostgreSQL: a server that stops answering must not hold a thread -----------------------
# store/ may not import bot.core.tunables, so these tunables live here, each with its reason.
# A libpq parameter in DATABASE_URL's query wins over the value here; `options` in the URL is
# applied after ours (`?options=-c statement_timeout=60s` for long reports: the client limit
# below follows it).
CONNECT_TIMEOUT = 3  # s; a connection takes ms on a LAN and < 1 s across regions with TLS;
# 3 s leave room for one lost SYN (resent after 1 s). libpq refuses less than 2 s.
STATEMENT_TIMEOUT_MS = 10_000  # server side; statements of a webhook, a command or a drain step
# take milliseconds, and one still running after 10 s holds locks that others wait for.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000  # server side; a session that keeps a transaction
# open without a statement for a minute (its client hung, or lost behind a proxy) lets go of
# its locks.
ANSWER_MARGIN = 2.0  # s the client waits beyond the statement timeout for the server's own
# cancellation; a server that has not answered by then is not answering: the connection goes.
PING_TIMEOUT = 2.0  # s; the pool's ping before it reuses an idle connection answers in ms, so
# one that does not answer in 2 s is dropped, and with it every idle connection of the pool.
TCP_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3,
                  "keepalives_count": 3}  # an idle connection whose peer vanished without a
# reset (failover, a NAT that dropped its state) is found dead after ~20 s, not hours.
TCP_USER_TIMEOUT_MS = 10_000  # data sent and not acknowledged for 10 s: the peer is gone.
POOL_TIMEOUT = 5  # s a checkout waits for a free pooled connection; by then the caller has
# given up (the intake answers 503 after 5 s, Slack wants its ack within 3 s).

_STATEMENT_TIMEOUT = re.compile(
    r"(?:(?<=-c)|(?<!\w))statement[_-]timeout\s*=\s*'?(\d+)\s*(ms|s|min|h|d)?'?")
_UNIT_MS = {"": 1, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def _postgres_engine(url: URL, **kwargs) -> Engine:
    theirs = url.query.get("options")
    ours = (f"-c statement_timeout={STATEMENT_TIMEOUT_MS} "
            f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS}")
    defaults = {"connect_timeout": CONNECT_TIMEOUT, "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
                **TCP_KEEPALIVES}
    connect_args = {key: value for key, value in defaults.items() if key not in url.query}
    connect_args["options"] = f"{ours} {theirs}" if isinstance(theirs, str) else ours
    connect_args.update(kwargs.pop("connect_args", {}))
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_timeout", POOL_TIMEOUT)
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args,
                           hide_parameters=True, **kwargs)
    if url.get_driver_name() == "psycopg":
        statement_ms = statement_timeout_ms(connect_args["options"])
        limit = statement_ms / 1000 + ANSWER_MARGIN if statement_ms else None
        event.listen(engine, "do_connect", lambda _d, _r, cargs, cparams:
                     AnsweringConnection.open(cargs, cparams, statements_within=limit))
        event.listen(engine, "checkin", _next_is_ping)
        event.listen(engine, "checkout", _next_are_statements)
    return engine


def statement_timeout_ms(options: str) -> int | None:
    """The last `statement_timeout` that libpq `options` set, in ms (0: none; None: unknown)."""
    found = _STATEMENT_TIMEOUT.findall(options)
    if not found:
        return None
    value, unit = found[-1]
    return int(value) * _UNIT_MS[unit]


class AnsweringConnection(psycopg.Connection):
    """A psycopg connection that stops waiting for a server that has stopped answering.

    psycopg waits for each answer without a limit, so a server behind a stuck proxy, or one
    that vanished without a reset, held the calling thread forever. Here each round trip waits
    at most `answer_within` seconds: the pool's ping `PING_TIMEOUT`, statements the statement
    timeout plus `ANSWER_MARGIN`. Then the connection is closed, so that SQLAlchemy treats it
    as a disconnection (it drops the rest of the pool too), and OperationalError is raised.
    """

    statements_within: float | None = None
    answer_within: float | None = None

    @classmethod
    def open(cls, cargs, cparams, *, statements_within: float | None) -> "AnsweringConnection":
        connection = cls.connect(*cargs, **cparams)
        connection.statements_within = connection.answer_within = statements_within
        return connection

    def wait(self, gen, *args, timeout: float | None = None, **kwargs):
        limit = self.answer_within
        if timeout is not None or limit is None:  # psycopg's own limits keep their meaning
            return super().wait(gen, *args, timeout=timeout, **kwargs)
        try:
            return super().wait(gen, *args, timeout=limit, **kwargs)
        except psycopg.errors._WaitTimeout as timed_out:  # what wait() raises on its timeout
            self.pgconn.finish()  # the connection is mid-exchange: it cannot be used again
            message = f"the database did not answer within {limit:g} s"
            raise psycopg.OperationalError(message) from timed_out


def _next_is_ping(dbapi_connection, _record) -> None:
    if isinstance(dbapi_connection, AnsweringConnection):
        dbapi_connection.answer_within = PING_TIMEOUT


def _next_are_statements(dbapi_connection, _record, _proxy) -> None:
    if isinstance(dbapi_connection, AnsweringConnection):
        dbapi_connection.answer_within = dbapi_connection.statements_within


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` says that the database could not be reached or did not answer in time
    (rather than that it refused the data): worth trying again later."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, exc.OperationalError | exc.InterfaceError | exc.TimeoutError
                      | TimeoutError)


def write_through(write: Callable[[], T], *, waits: Iterable[float], what: str) -> T:
    """Runs `write` (a transaction of its own) and, while the database is briefly unavailable
    (a lock, a pool timeout, a failover), runs it again after each of `waits` (seconds) in
    turn. For a record that must not be lost once the thing is done elsewhere, e.g. the id
    of a message WhatsApp took: without it, the message's next run would send it again."""
    pending = list(waits)
    while True:
        try:
            return write()
        except Exception as error:
            if not is_unavailable(error) or not pending:
                raise
            log.warning("cannot record %s yet (%s); trying again", what,
                        error.__class__.__name__)
            time.sleep(pending.pop(0))


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
            create_owner_only(self.path)
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
        attach(self.engine)  # where data keys are looked up outside its transactions
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
            with reading(self.engine):  # sealed values name their keys, kept in this database
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
        """Raises when the database does not answer (a read: never waits for SQLite's writer)."""
        with self.transaction(readonly=True) as session:
            session.execute(text("SELECT 1"))

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
    processes starting together on a fresh database do not race each other. Migrations run
    without the statement and idle-in-transaction timeouts: an index on a big table may take
    minutes, and the lock's session idles in its transaction while the migration runs.
    """
    if make_url(url).get_backend_name() != "postgresql":
        make_engine(url).dispose()  # creates the folder under var/ for SQLite
        command.upgrade(alembic_config(url), revision)
        return
    url = _without_statement_timeouts(url)
    engine = make_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        try:
            command.upgrade(alembic_config(url), revision)
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
    engine.dispose()


def _without_statement_timeouts(url: str) -> str:
    parsed = make_url(url)
    theirs = parsed.query.get("options")
    off = "-c statement_timeout=0 -c idle_in_transaction_session_timeout=0"
    options = f"{theirs} {off}" if isinstance(theirs, str) else off
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)

"""A PostgreSQL that accepts and never answers (behind a proxy this test controls) makes
transactions fail within seconds, not hang; once it answers again, the next transactions work
without restarting anything."""

import pytest
from sqlalchemy import exc, text
from sqlalchemy.engine import make_url

from store import db as store_db
from store.db import AnsweringConnection, Database, make_engine, statement_timeout_ms
from tests.store.blackhole import run_bounded, tcp_proxy

FAILS_WITHIN = 10  # s: a pooled connection's ping (2 s), then a connect attempt (3 s)
RECOVERS_WITHIN = 3  # s


@pytest.fixture
def proxied(postgres_database):
    """(proxy, URL of the test database through the proxy)."""
    url = make_url(postgres_database)
    with tcp_proxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)


def select_one(database: Database) -> int:
    with database.transaction() as session:
        return session.execute(text("SELECT 1")).scalar_one()


def test_a_black_holed_database_fails_fast_and_recovers_by_itself(proxied):
    proxy, url = proxied
    database = Database(url)
    try:
        assert select_one(database) == 1  # a pooled connection, about to be stuck
        proxy.black_hole()
        for _ in range(2):  # the stuck pooled connection, then a fresh connection attempt
            _, error, seconds = run_bounded(30, lambda: select_one(database))
            assert isinstance(error, exc.OperationalError), error
            assert seconds < FAILS_WITHIN
        proxy.forward()
        for _ in range(3):
            result, error, seconds = run_bounded(30, lambda: select_one(database))
            assert error is None and result == 1
            assert seconds < RECOVERS_WITHIN
    finally:
        database.dispose()


def test_a_statement_stuck_mid_transaction_gives_up_and_the_pool_recovers(
        proxied, monkeypatch):
    monkeypatch.setattr(store_db, "STATEMENT_TIMEOUT_MS", 1000)  # the client waits 1 + 2 s
    proxy, url = proxied
    database = Database(url)

    def stuck_in_the_middle() -> None:
        with database.transaction() as session:
            session.execute(text("SELECT 1"))
            proxy.black_hole()
            session.execute(text("SELECT 2"))

    try:
        _, error, seconds = run_bounded(30, stuck_in_the_middle)
        assert isinstance(error, exc.OperationalError), error
        assert "did not answer within 3 s" in str(error)
        assert seconds < 1 + store_db.ANSWER_MARGIN + 2
        proxy.forward()
        result, error, seconds = run_bounded(30, lambda: select_one(database))
        assert error is None and result == 1
        assert seconds < RECOVERS_WITHIN
    finally:
        database.dispose()


def test_the_server_cancels_a_slow_statement_and_the_connection_stays_usable(
        postgres_database, monkeypatch):
    monkeypatch.setattr(store_db, "STATEMENT_TIMEOUT_MS", 300)
    database = Database(postgres_database)
    try:
        with (pytest.raises(exc.OperationalError, match="statement timeout"),
              database.transaction() as session):
            session.execute(text("SELECT pg_sleep(5)"))
        assert select_one(database) == 1
    finally:
        database.dispose()


def test_connections_carry_the_timeouts_and_keepalives(postgres_database):
    engine = make_engine(postgres_database)
    try:
        with engine.connect() as connection:
            show = {name: connection.exec_driver_sql(f"SHOW {name}").scalar_one()
                    for name in ("statement_timeout", "idle_in_transaction_session_timeout")}
            raw = connection.connection.dbapi_connection
            params = raw.info.get_parameters()
        assert show == {"statement_timeout": "10s", "idle_in_transaction_session_timeout": "1min"}
        assert isinstance(raw, AnsweringConnection)
        assert raw.statements_within == 12
        assert params["connect_timeout"] == "3"
        assert params["tcp_user_timeout"] == "10000"
        assert (params["keepalives"], params["keepalives_idle"], params["keepalives_interval"],
                params["keepalives_count"]) == ("1", "10", "3", "3")
        assert engine.pool.timeout() == store_db.POOL_TIMEOUT
        assert engine.pool._pre_ping
    finally:
        engine.dispose()


def test_the_url_overrides_the_defaults_and_the_client_limit_follows(postgres_database):
    url = make_url(postgres_database).update_query_dict(
        {"options": "-c statement_timeout=60s", "connect_timeout": "7"})
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            timeout = connection.exec_driver_sql("SHOW statement_timeout").scalar_one()
            raw = connection.connection.dbapi_connection
        assert timeout == "1min"
        assert raw.statements_within == 60 + store_db.ANSWER_MARGIN
        assert raw.info.get_parameters()["connect_timeout"] == "7"
    finally:
        engine.dispose()


def test_migrations_run_without_statement_timeouts(postgres_database):
    url = store_db._without_statement_timeouts(postgres_database)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            shown = [connection.exec_driver_sql(f"SHOW {name}").scalar_one()
                     for name in ("statement_timeout", "idle_in_transaction_session_timeout")]
            assert connection.connection.dbapi_connection.statements_within is None
        assert shown == ["0", "0"]
    finally:
        engine.dispose()


@pytest.mark.parametrize(("options", "expected"), [
    ("-c statement_timeout=10000", 10_000),
    ("-c statement_timeout=5s -c statement_timeout=1min", 60_000),
    ("-cstatement_timeout=0", 0),
    ("--statement-timeout=7s", 7_000),
    ("-c statement_timeout='2h'", 7_200_000),
    ("-c idle_in_transaction_session_timeout=5", None),
    ("-c search_path=app", None),
])
def test_statement_timeout_is_read_from_libpq_options(options, expected):
    assert statement_timeout_ms(options) == expected

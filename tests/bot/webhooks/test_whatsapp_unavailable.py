"""A WhatsApp webhook whose rows cannot be stored gets 503 (Meta retries), never a 500."""

import shutil
import sqlite3

import pytest

from bot.webhooks.intake import IntakeUnavailable, IntakeWriter
from tests.bot.webhooks.http_kit import server_log
from tests.bot.whatsapp_kit import TEXT, live, make_settings, message_body, post

CANNOT_STORE = {"error": "cannot store right now; retry"}


@pytest.fixture
def sqlite_path(tmp_path, sqlite_template):
    path = tmp_path / "opsbot.db"
    shutil.copy(sqlite_template, path)
    return path


def asgi_errors(caplog) -> list[str]:
    """uvicorn's "Exception in ASGI application": what an exception escaping the app logs."""
    return [r.getMessage() for r in caplog.records if r.name.startswith("uvicorn")]


def test_a_database_that_fails_gets_503(tmp_path, sqlite_path, redis_url, caplog):
    settings = make_settings(tmp_path, f"sqlite:///{sqlite_path}", redis_url)
    with live(settings) as (_, url), server_log(caplog):
        with sqlite3.connect(sqlite_path) as connection:  # every insert now fails
            connection.execute("ALTER TABLE inbound_events RENAME TO inbound_events_gone")
        response = post(url, message_body(TEXT, wamid="wamid.LOST"))
    assert response.status_code == 503
    assert response.json() == CANNOT_STORE
    assert asgi_errors(caplog) == []


@pytest.mark.parametrize("error", [IntakeUnavailable("not stored within 5 s"),
                                   RuntimeError("anything else the writer raises")])
def test_an_intake_that_cannot_store_gets_503(tmp_path, sqlite_path, redis_url, caplog,
                                               monkeypatch, error):
    async def refuse(_writer, _rows):
        raise error

    monkeypatch.setattr(IntakeWriter, "store", refuse)
    settings = make_settings(tmp_path, f"sqlite:///{sqlite_path}", redis_url)
    with live(settings) as (_, url), server_log(caplog):
        response = post(url, message_body(TEXT, wamid="wamid.LATER"))
    assert response.status_code == 503
    assert response.json() == CANNOT_STORE
    assert asgi_errors(caplog) == []

"""The web app over real HTTP: /healthz, /readyz with dependencies that hang or are down, and
no API documentation on the webhook app."""

import shutil
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest

from bot.core import tunables
from store import db
from tests.bot.whatsapp_kit import live, make_settings

USER = "opsbot_role"


class SilentServer:
    """A TCP port that takes connections (the kernel completes the handshake) and never says
    a word: a Redis or PostgreSQL that hangs. `close` resets the connections it holds."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.listener.getsockname()[1]

    def close(self) -> None:
        self.listener.close()


@contextmanager
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


def closed_port() -> int:
    """A port on which nothing listens (connections are refused at once)."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


@pytest.fixture
def sqlite_url(tmp_path, sqlite_template) -> str:
    path = tmp_path / "opsbot.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


def test_ready_when_both_answer(tmp_path, sqlite_url, redis_url):
    with live(make_settings(tmp_path, sqlite_url, redis_url)) as (_, url):
        response = httpx.get(url + "/readyz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"ready": True, "database": "ok", "redis": "ok"}


@pytest.mark.parametrize("hanging", ["redis", "database"])
def test_a_hanging_dependency_neither_freezes_the_app_nor_holds_readyz(
        tmp_path, sqlite_url, redis_url, monkeypatch, hanging):
    # Far shorter than the clients' own timeouts (web Redis: answer; PostgreSQL: connect), so
    # that the ping still hangs when /readyz gives up on it (past those the client raises:
    # "down"), and a probe that waited for the client would take 5 s or more.
    monkeypatch.setattr(tunables, "READY_PROBE_TIMEOUT", 0.8)
    monkeypatch.setattr(tunables, "REDIS_SOCKET_TIMEOUT", 5.0)
    monkeypatch.setattr(db, "CONNECT_TIMEOUT", 5)
    with silent_server() as server:
        silent = {"redis": f"redis://127.0.0.1:{server.port}/0",
                  "database": f"postgresql+psycopg://{USER}:pw@127.0.0.1:{server.port}/opsbot"}
        urls = {"database": sqlite_url, "redis": redis_url, hanging: silent[hanging]}
        with live(make_settings(tmp_path, urls["database"], urls["redis"])) as (_, url):
            started = time.monotonic()
            answers, health = _readyz_twice_and_healthz(url)
            elapsed = time.monotonic() - started
            server.close()  # frees the hanging ping's thread
    assert health.status_code == 200
    assert elapsed < 4  # ~1.2 s: both gave up after READY_PROBE_TIMEOUT (more on a busy machine)
    expected = {"ready": False, "database": "ok", "redis": "ok", hanging: "timeout"}
    for answer in answers:
        assert answer.status_code == 503
        assert answer.json() == expected


def _readyz_twice_and_healthz(url: str) -> tuple[list[httpx.Response], httpx.Response]:
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(httpx.get, url + "/readyz", timeout=10)
        time.sleep(0.3)  # the first ping now hangs; the second request waits on it
        second = pool.submit(httpx.get, url + "/readyz", timeout=10)
        health = httpx.get(url + "/healthz", timeout=1)  # the event loop is free meanwhile
        return [first.result(), second.result()], health


def test_readyz_names_what_is_down_without_the_error_text(tmp_path):
    port = closed_port()
    database_url = f"postgresql+psycopg://{USER}:pw@127.0.0.1:{port}/opsbot"
    with live(make_settings(tmp_path, database_url, f"redis://127.0.0.1:{port}/0")) as (_, url):
        response = httpx.get(url + "/readyz", timeout=10)
    assert response.status_code == 503
    assert response.json() == {"ready": False, "database": "down", "redis": "down"}
    for secret in ("127.0.0.1", str(port), USER, "refused", "Error"):
        assert secret not in response.text


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"])
def test_no_api_documentation_is_served(tmp_path, sqlite_url, redis_url, path):
    with live(make_settings(tmp_path, sqlite_url, redis_url)) as (_, url):
        assert httpx.get(url + path, timeout=10).status_code == 404

"""`opsbot serve` stops within seconds even while a browser holds the console's live-update
stream open (a stream never ends by itself: without a grace limit the stop waited for it)."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from bot.core import tunables
from store.db import Database, upgrade_database
from tests.bot.cli.test_run_scaled import free_port, wait_ready
from tests.bot.workers_support import write_rules
from tests.console_kit import CHEAP, add_person, sign_in


@pytest.mark.timeout(90)
def test_serve_stops_promptly_with_a_live_stream_open(tmp_path, redis_url, monkeypatch,
                                                       processes):
    monkeypatch.setattr("store.users.HASH_COST", CHEAP)
    write_rules(tmp_path)
    url = f"sqlite:///{tmp_path / 'opsbot.db'}"
    upgrade_database(url)
    db = Database(url)
    person = add_person(db, "ines@example.com", "admin")
    db.dispose()
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url,
           "RULES_PATH": str(tmp_path / "rules.yaml")}
    server = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", str(port)],
                              env=env, cwd=tmp_path, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processes.append(server)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, timeout=40)
    http = sign_in(base, person)
    opened = threading.Event()

    def listen() -> None:
        try:
            with http.stream("GET", "/board/stream", timeout=None) as stream:
                opened.set()
                for _ in stream.iter_lines():
                    pass
        except Exception:  # the server cut it: that is the point
            pass

    threading.Thread(target=listen, daemon=True).start()
    assert opened.wait(10)
    started = time.monotonic()
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    assert time.monotonic() - started < tunables.WEB_SHUTDOWN_GRACE + 5

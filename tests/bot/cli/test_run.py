"""`opsbot run`: one command starts web, worker and an embedded Redis; Ctrl-C stops all."""

import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest
import redis

from bot.core.embedded_redis import EmbeddedRedis
from tests.bot.cli.test_run_scaled import free_port, wait_ready
from tests.bot.workers_support import write_rules


def test_embedded_redis_starts_answers_and_stops():
    server = EmbeddedRedis()
    url = server.start()
    pid = server.pid
    client = redis.Redis.from_url(url)
    assert client.ping()
    client.close()
    server.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.timeout(90)
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_run_starts_everything_and_stops_everything(tmp_path, stop_signal):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL", "RULES_PATH", "WHATSAPP_TOKEN",
                        "SLACK_BOT_TOKEN", "TELEGRAM_BOT_TOKEN")}
    (tmp_path / "config").mkdir()
    write_rules(tmp_path / "config")  # found through --rules, not the folder's rules.yaml
    runner = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--port", str(port), "--rules", "config/rules.yaml"],
        env=env, cwd=tmp_path,
        stdout=(tmp_path / "run.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    family: list[psutil.Process] = []
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=40)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
        assert ready == {"ready": True, "database": "ok", "redis": "ok"}
        family = psutil.Process(runner.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in family)
        assert "redis-server" in names and "serve" in names and "worker" in names
        assert (tmp_path / "var" / "opsbot.db").exists()  # migrated SQLite under var/
        runner.send_signal(stop_signal)
        assert runner.wait(timeout=40) == 0
        said = (tmp_path / "run.log").read_text().splitlines()
        assert said[0] == (f"opsbot: database SQLite at {tmp_path.resolve()}/var/opsbot.db "
                           f"(DATABASE_URL is not set)")
        assert said[1].startswith("opsbot: no channel is configured")
        time.sleep(0.5)
        alive = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"left behind: {[p.cmdline() for p in alive]}"
    finally:
        if runner.poll() is None:
            runner.kill()
        for child in family:  # only what this runner started
            if child.is_running():
                child.kill()

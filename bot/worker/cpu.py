"""CPU time of a worker process by stage, as the process itself accounts it.

A worker's main thread runs the jobs: it charges the thread's CPU time (`time.thread_time`)
to the stage it is in (processing, delivery, timers, webhooks), a nested stage pausing the one
around it; the keeper threads charge theirs to `upkeep`; the Slack and Telegram senders' event
loop threads (`notifiers.slack`, `notifiers.telegram`), which make the sends' calls, and the
threads that send a drain's lanes (`bot.usecases.delivery`) count as `delivery`. The
heartbeat publishes the totals, with the whole process's CPU time, in the Redis hash
`opsbot:cpu:<worker name>` (it expires with the alive key), so an operator or
`bench/capacity_bench.py` can see where the CPU goes.
What no stage claims (RQ dequeuing a job, saving its result, drain requests) is the process's
time minus the stages'.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bot.usecases.delivery import SEND_THREAD
from notifiers import slack, telegram

CPU_KEY = "opsbot:cpu:{}"
SENDING_THREADS = (slack.LOOP_THREAD, telegram.LOOP_THREAD)
STAGES = ("processing", "delivery", "timers", "webhooks", "upkeep")


class StageClock:
    """Seconds of CPU per stage; each thread keeps its own stack of stages."""

    def __init__(self) -> None:
        self.totals = dict.fromkeys(STAGES, 0.0)  # every key from the start: readers copy it
        self._local = threading.local()
        self._lock = threading.Lock()  # the keeper threads share `upkeep`

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        stack = self._stack()
        self._charge(stack)
        stack.append(name)
        try:
            yield
        finally:
            self._charge(stack)
            stack.pop()

    def snapshot(self) -> dict[str, float]:
        """The totals so far, with `process`: the whole process's CPU time (every thread)."""
        with self._lock:
            totals = {**self.totals, "process": time.process_time()}
        totals["delivery"] += sum(_cpu_time(thread) for thread in threading.enumerate()
                                  if thread.name in SENDING_THREADS
                                  or thread.name.startswith(SEND_THREAD))
        return totals

    def _stack(self) -> list[str]:
        if not hasattr(self._local, "stack"):
            self._local.stack, self._local.mark = [], time.thread_time()
        return self._local.stack

    def _charge(self, stack: list[str]) -> None:
        now = time.thread_time()
        if stack:
            with self._lock:
                self.totals[stack[-1]] += now - self._local.mark
        self._local.mark = now


def _cpu_time(thread: threading.Thread) -> float:
    """The CPU time `thread` has used (0 once it has ended)."""
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident or 0))
    except (OSError, ValueError):
        return 0.0


CLOCK = StageClock()
stage = CLOCK.stage

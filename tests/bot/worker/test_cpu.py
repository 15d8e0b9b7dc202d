"""The worker's CPU accounting by stage (`bot.worker.cpu`)."""

import threading
import time

import pytest

from bot.usecases.delivery import SEND_THREAD
from bot.worker.cpu import STAGES, StageClock
from notifiers import slack, telegram


def spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_stage_is_charged_its_threads_cpu_and_a_nested_stage_pauses_the_outer_one():
    clock = StageClock()
    with clock.stage("processing"):
        spin(0.05)
        with clock.stage("delivery"):
            spin(0.1)
        spin(0.05)
    spin(0.05)  # outside any stage: charged to none

    assert 0.1 <= clock.totals["processing"] < 0.14
    assert 0.1 <= clock.totals["delivery"] < 0.12
    assert clock.totals["timers"] == 0.0
    assert set(clock.totals) == set(STAGES)


def test_threads_keep_their_own_stages_and_a_snapshot_adds_the_process_time():
    clock = StageClock()

    def keeper() -> None:
        with clock.stage("upkeep"):
            spin(0.05)

    with clock.stage("timers"):
        thread = threading.Thread(target=keeper)
        thread.start()
        thread.join()  # the keeper's CPU is not this thread's: timers are charged ~nothing

    snapshot = clock.snapshot()
    assert 0.05 <= snapshot["upkeep"] < 0.07
    assert snapshot["timers"] < 0.02
    assert snapshot["process"] >= snapshot["upkeep"]


@pytest.mark.parametrize("name", [slack.LOOP_THREAD, telegram.LOOP_THREAD, f"{SEND_THREAD}_0"])
def test_the_threads_that_send_count_as_delivery(name):
    clock = StageClock()
    before = clock.snapshot()["delivery"]  # other tests' senders may have loops of their own
    spun, done = threading.Event(), threading.Event()

    def loop() -> None:  # the Slack calls, or a drain's lane of rows, on a thread of their own
        spin(0.05)
        spun.set()
        done.wait()

    thread = threading.Thread(target=loop, name=name)
    thread.start()
    try:
        spun.wait()
        assert 0.05 <= clock.snapshot()["delivery"] - before < 0.07
    finally:
        done.set()
        thread.join()

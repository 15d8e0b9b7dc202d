"""The RQ worker: runs jobs and the scheduler, keeps itself visibly alive, and sweeps.

Tuning (why): jobs run in the worker process (`SimpleWorker`: no fork per job, so the
database pool and rules stay warm). A worker killed with SIGKILL leaves its job STARTED;
RQ would notice only after the job timeout plus two minutes, so each worker refreshes an
`opsbot:alive:<name>` key every second (TTL 5 s) and the sweeper requeues the jobs of
workers whose key is gone; the same round trip publishes the worker's CPU time by stage
(`bot.worker.cpu`). SIGTERM (and the first Ctrl-C) is RQ's warm shutdown: the
current job finishes, then the worker exits.
"""

import logging
import threading
import time

from rq import SimpleWorker
from rq.scheduler import RQScheduler
from rq.utils import now as now_utc

from bot.core import tunables
from bot.core.jobs import Jobs
from bot.core.services import Services
from bot.worker.cpu import CLOCK, CPU_KEY, stage
from bot.worker.drains import ask_for_drain
from bot.worker.sweeper import ALIVE_KEY, sweep
from bot.worker.timers import adopt_legacy_timers, has_due_timers
from rules import prepare_language_detection

log = logging.getLogger(__name__)


class DrainingScheduler(RQScheduler):
    """RQ's scheduler moves at most 1,000 due jobs per tick; this one drains every due job
    (in batches of 1,000, up to SCHEDULER_MAX_BATCHES) before sleeping, and asks for a drain
    when an SLA timer is due (drains fire them: `bot.worker.timers`)."""

    def work(self):
        # RQ's loop, ticking every SCHEDULER_TICK (its `interval` must stay a whole number:
        # it is also the lock's TTL in seconds).
        self._install_signal_handlers()
        self.register_birth()
        while not self._stop_requested:
            if self.should_reacquire_locks:
                self.acquire_locks()
            self.heartbeat()
            self.enqueue_scheduled_jobs()
            time.sleep(tunables.SCHEDULER_TICK)
        self.stop()

    def enqueue_scheduled_jobs(self):
        for _ in range(tunables.SCHEDULER_MAX_BATCHES):
            super().enqueue_scheduled_jobs()
            if not self._has_due_jobs():
                break
        for name in self.acquired_locks:  # the queues this scheduler holds
            jobs = Jobs(self.connection, queue_name=name)
            if has_due_timers(jobs, now=now_utc()):
                ask_for_drain(jobs)

    def _has_due_jobs(self) -> bool:
        now = time.time()
        return any(
            r.get_jobs_to_schedule(now, chunk_size=1) for r in self._scheduled_job_registries
        )


class OpsbotWorker(SimpleWorker):
    """An RQ worker whose scheduler drains bursts and ticks four times a second."""

    def heartbeat(self, timeout=None, pipeline=None):
        # RQ sends several stand-alone heartbeats per job (3 round trips each); one a second
        # keeps a 30 s worker TTL alive and leaves Redis free for bursts of timers.
        recent = self.last_heartbeat and (now_utc() - self.last_heartbeat).total_seconds() < 1
        if timeout is None and pipeline is None and recent:
            return
        super().heartbeat(timeout, pipeline)

    def _start_scheduler(self, burst=False, logging_level="INFO", *args, **kwargs):
        self.scheduler = DrainingScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level or "INFO",
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if not burst:
            self.scheduler.start()
            return
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()
        finally:
            self.scheduler.release_locks()
            self.scheduler.register_death()


def tune_redis(redis) -> None:
    """Lets Redis keep RQ job hashes compact (values up to 1 KB stay in a listpack): a queued
    delivery or digest job then takes ~0.8 KB instead of ~2.2 KB. Best effort: managed Redis
    services may refuse CONFIG (set `hash-max-listpack-value 1024` in their console instead)."""
    try:
        redis.config_set("hash-max-ziplist-value", 1024)
    except Exception as exc:  # a refusal only costs memory
        log.info("Redis refused CONFIG SET hash-max-ziplist-value (%s); jobs take more memory", exc)


def make_worker(services: Services) -> OpsbotWorker:
    return OpsbotWorker(
        [services.jobs.queue],
        connection=services.redis,
        worker_ttl=tunables.WORKER_TTL,
        job_monitoring_interval=tunables.JOB_MONITORING_INTERVAL,
        maintenance_interval=tunables.MAINTENANCE_INTERVAL,
    )


class Keeper(threading.Thread):
    """Calls `step` every `every` seconds until stopped; logs and survives failures."""

    def __init__(self, name: str, step, every: float) -> None:
        super().__init__(name=name, daemon=True)
        self.step, self.every = step, every
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                with stage("upkeep"):
                    self.step()
            except Exception:  # must outlive a Redis or database hiccup
                log.exception("%s: pass failed; trying again in %s s", self.name, self.every)
            self.stopping.wait(self.every)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)


def _keepers(services: Services, alive_key: str, cpu_key: str) -> list[Keeper]:
    # Separate threads: a slow sweep (a locked database) must not make the worker look dead.
    def heartbeat() -> None:
        with services.redis.pipeline(transaction=False) as pipe:
            pipe.set(alive_key, 1, ex=tunables.ALIVE_TTL)
            pipe.hset(cpu_key, mapping=CLOCK.snapshot())
            pipe.expire(cpu_key, tunables.ALIVE_TTL)
            pipe.execute()

    return [
        Keeper("opsbot-heartbeat", heartbeat, tunables.HEARTBEAT_EVERY),
        Keeper("opsbot-sweeper", lambda: sweep(services), tunables.SWEEP_EVERY),
    ]


def run_worker(services: Services, *, burst: bool = False) -> bool:
    """Works until SIGTERM/Ctrl-C (or, with `burst`, until the queue is empty).

    Returns whether any job ran. A burst run sweeps once first, so it also re-drives.
    """
    tune_redis(services.redis)
    adopted = adopt_legacy_timers(services.jobs)
    if adopted:
        log.info("moved %s pending timer(s) of the previous version into the schedule", adopted)
    prepare_language_detection(services.rules.current)  # not on the first message's time
    worker = make_worker(services)
    alive_key, cpu_key = ALIVE_KEY.format(worker.name), CPU_KEY.format(worker.name)
    services.redis.set(alive_key, 1, ex=tunables.ALIVE_TTL)
    if burst:
        sweep(services)
    keepers = _keepers(services, alive_key, cpu_key)
    for keeper in keepers:
        keeper.start()
    try:
        return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
    finally:
        for keeper in keepers:
            keeper.stop()
        services.redis.delete(alive_key, cpu_key)

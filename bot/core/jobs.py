"""RQ queues: every background job opsbot runs is a `JobSpec` below, enqueued through `Jobs`.

A spec names its entry point in `bot.worker.entrypoints` by dotted path (RQ stores that
name in Redis), so that this module and the modules that enqueue import no entry point;
`tests/bot/worker/test_entrypoints.py` checks that every spec names a real entry point.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis import Redis
from redis.client import Pipeline
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.results import Result
from rq.utils import now as now_utc

from bot.core import tunables

_ALIVE = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class RetryPolicy:
    """How something that failed is tried again: one wait (seconds) before each retry."""

    waits: tuple[int, ...]

    @property
    def retries(self) -> int:
        return len(self.waits)

    def wait_before(self, retry: int) -> timedelta:
        """The wait before retry number `retry` (1-based; the last wait repeats)."""
        return timedelta(seconds=self.waits[min(max(retry, 1), self.retries) - 1])

    def for_rq(self) -> Retry:
        return Retry(max=self.retries, interval=list(self.waits))


RETRY = RetryPolicy(tunables.RETRY_WAITS)


@dataclass(frozen=True)
class JobSpec:
    """A kind of background job: its entry point's name in `bot.worker.entrypoints`, and
    whether RQ retries it by `RETRY` when it raises."""

    name: str
    retried: bool = True

    @property
    def function(self) -> str:
        return f"bot.worker.entrypoints.{self.name}"


DRAIN = JobSpec("drain", retried=False)  # a lost drain is asked for again by the sweeper
DELIVER = JobSpec("deliver")
RETRY_EVENT = JobSpec("retry_event")
FIRE_TIMER = JobSpec("fire_timer")
SEND_DIGEST = JobSpec("send_digest")
DELIVER_WEBHOOKS = JobSpec("deliver_webhooks", retried=False)  # the sweeper asks again
JOB_SPECS = (DRAIN, DELIVER, RETRY_EVENT, FIRE_TIMER, SEND_DIGEST, DELIVER_WEBHOOKS)


def make_job_id(*parts: object) -> str:
    """A deterministic RQ job id (only [A-Za-z0-9_-]); unsafe parts are hashed."""
    clean = []
    for part in parts:
        text = str(part)
        if _UNSAFE.search(text):
            text = hashlib.sha1(text.encode()).hexdigest()[:20]
        clean.append(text)
    return "-".join(clean)


def outbox_job_id(outbox_id: int, *, at: datetime | None = None) -> str:
    """The job that delivers one outbox row (`at`: a delivery rescheduled to that instant)."""
    if at is None:
        return make_job_id("outbox", outbox_id)
    return make_job_id("outbox", outbox_id, "at", int(at.timestamp()))


def event_retry_job_id(event_id: int, attempts: int) -> str:
    """The job that retries an inbound event after its `attempts`-th failure."""
    return make_job_id("event", event_id, "retry", attempts)


def timer_job_id(task_id: int, kind: str, generation: int) -> str:
    """The job of one SLA timer of a task's timer generation."""
    return make_job_id("timer", task_id, kind, generation)


def digest_job_id(agent_id: str, opens: datetime) -> str:
    """The job of an agent's shift that starts at `opens` (routing, and her digest)."""
    return make_job_id("digest", agent_id, opens.astimezone(UTC).strftime("%Y%m%dT%H%M"))


class Jobs:
    """Enqueues and schedules jobs once per id; a live job with the same id is kept."""

    def __init__(self, redis: Redis, *, queue_name: str = tunables.QUEUE_NAME) -> None:
        self.redis = redis
        self.queue = Queue(queue_name, connection=redis)

    def enqueue(self, spec: JobSpec, *args: object, job_id: str,
                at: datetime | None = None) -> Job:
        """Enqueues `spec(*args)` now, or at `at`; returns the live job when one exists."""
        existing = self._fetch(job_id)
        if existing is not None:
            if existing.get_status(refresh=False) in _ALIVE:
                return existing
            existing.delete()
        options = {**_options(spec), "job_id": job_id}
        if at is not None:
            return self.queue.enqueue_at(at, spec.function, *args, **options)
        return self.queue.enqueue(spec.function, *args, **options)

    def enqueue_new(self, spec: JobSpec, *args: object, job_id: str) -> Job:
        """Enqueues `spec(*args)` under an id that no job can have yet (no look-up), keeping
        no result (drains: many a minute, nothing to look at)."""
        options = {**_options(spec), "job_id": job_id, "result_ttl": 0}
        return self.queue.enqueue(spec.function, *args, **options)

    def add_failed(self, spec: JobSpec, *args: object, job_id: str, error: str,
                   pipeline: Pipeline) -> None:
        """Adds to `pipeline` a job `spec(*args)` of this queue that failed for good with
        `error` (its traceback), as RQ's worker writes one: `list_failed_jobs` lists it and
        `requeue_failed_job` puts it back on the queue."""
        options = _options(spec)
        job = self.queue.create_job(
            spec.function, args=args, job_id=job_id, status=JobStatus.FAILED,
            timeout=options["job_timeout"], result_ttl=options["result_ttl"],
            failure_ttl=options["failure_ttl"],
        )  # fmt: skip
        job.ended_at = now_utc()
        job.save(pipeline=pipeline)
        FailedJobRegistry(queue=self.queue).add(job, ttl=options["failure_ttl"],
                                                exc_string=error, pipeline=pipeline)
        Result.create_failure(job, options["failure_ttl"], exc_string=error, pipeline=pipeline)

    def exists(self, job_id: str) -> bool:
        job = self._fetch(job_id)
        return job is not None and job.get_status(refresh=False) in _ALIVE

    def _fetch(self, job_id: str) -> Job | None:
        try:
            return Job.fetch(job_id, connection=self.redis)
        except NoSuchJobError:
            return None


@dataclass(frozen=True)
class FailedJob:
    """A job that failed for good, as `opsbot jobs failed` and the console show it: `error`
    is the last line of its traceback."""

    id: str
    func: str
    args: list
    ended_at: datetime | None
    error: str


def list_failed_jobs(jobs: Jobs) -> list[FailedJob]:
    """The jobs in the failed registry of `jobs`' queue (gone ones left out); raises
    RedisError when Redis does not answer."""
    registry = FailedJobRegistry(queue=jobs.queue)
    found = Job.fetch_many(registry.get_job_ids(), connection=jobs.redis)
    return [_failed_job(job) for job in found if job is not None]


def _failed_job(job: Job) -> FailedJob:
    result = job.latest_result()
    error = ((result.exc_string if result else None) or "").strip()
    return FailedJob(id=job.id, func=job.func_name, args=list(job.args), ended_at=job.ended_at,
                     error=error.splitlines()[-1] if error else "")


def requeue_failed_job(jobs: Jobs, *, job_id: str) -> None:
    """Puts the failed job `job_id` back on its queue; raises NoSuchJobError (no such job),
    InvalidJobOperation (it has not failed) or RedisError."""
    FailedJobRegistry(queue=jobs.queue).requeue(job_id)


def _options(spec: JobSpec) -> dict:
    return {"retry": RETRY.for_rq() if spec.retried else None,
            "job_timeout": tunables.JOB_TIMEOUT, "result_ttl": tunables.RESULT_TTL,
            "failure_ttl": tunables.FAILURE_TTL}

"""RQ queues: every background job opsbot runs is a `JobSpec` below, enqueued through `Jobs`.

A spec names its entry point in `bot.worker.entrypoints` by dotted path (RQ stores that
name in Redis), so that this module and the modules that enqueue import no entry point;
`tests/bot/worker/test_entrypoints.py` checks that every spec names a real entry point.
"""

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

from redis import Redis
from redis.client import Pipeline
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.results import Result

from bot.core import tunables

_ALIVE = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED}
_RUNNING = {JobStatus.STARTED}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
TIMERS_SUFFIX = "-timers"  # the timers' queue: `Jobs.timers`


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

    @cached_property
    def timers(self) -> "Jobs":
        """The SLA timers' jobs: scheduled on a queue of their own that no worker takes from
        and RQ's scheduler does not move; drains fire them in batches once due
        (`bot.worker.timers.claim_due_timers`)."""
        return Jobs(self.redis, queue_name=f"{self.queue.name}{TIMERS_SUFFIX}")

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

    def schedule_many(
        self,
        spec: JobSpec,
        calls: Sequence[tuple[str, tuple, datetime]],
        *,
        cancel: Sequence[str] = (),
        pipeline: Pipeline | None = None,
    ) -> None:
        """Schedules `spec(*args)` at `at` for each (job_id, args, at) by `enqueue`'s rule (a
        live job with the id is kept, any other replaced) and deletes the jobs `cancel` unless
        running. One round trip reads the statuses, one pipeline writes; with `pipeline` the
        writes go there and the caller executes it (as in RQ's `schedule_job`)."""
        planned = {job_id for job_id, _args, _at in calls}
        ids = [*planned, *(job_id for job_id in dict.fromkeys(cancel) if job_id not in planned)]
        status = dict(zip(ids, self.statuses(ids), strict=True))
        # A cancelled job that is running is left alone (it re-reads its state).
        kept = {job_id: _ALIVE if job_id in planned else _RUNNING for job_id in ids}
        gone = [(i, s) for i, s in status.items() if s is not None and s not in kept[i]]
        pipe = pipeline if pipeline is not None else self.redis.pipeline()
        self.delete_many(gone, pipeline=pipe)
        self._add_scheduled(spec, [c for c in calls if status[c[0]] not in _ALIVE], pipe)
        if pipeline is None:
            pipe.execute()

    def _add_scheduled(self, spec: JobSpec, calls: list, pipe: Pipeline) -> None:
        # What `enqueue_at` writes (RQ's `schedule_job`: SADD of the queue, the job's hash with
        # its status, its score in the schedule), with one SADD for the whole batch.
        if not calls:
            return
        pipe.sadd(self.queue.redis_queues_keys, self.queue.key)
        registry = self.queue.scheduled_job_registry
        options = _options(spec)
        for job_id, args, at in calls:
            job = self.queue.create_job(
                spec.function, args=args, job_id=job_id, status=JobStatus.SCHEDULED,
                retry=options["retry"], timeout=options["job_timeout"],
                result_ttl=options["result_ttl"], failure_ttl=options["failure_ttl"],
            )  # fmt: skip
            job.save(pipeline=pipe)
            registry.schedule(job, at, pipeline=pipe)

    def statuses(self, job_ids: Sequence[str]) -> list[JobStatus | None]:
        """The stored status of each job (None when there is no job), in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(Job.key_for(job_id), "status")
            found = pipe.execute()
        return [JobStatus(s.decode()) if s else None for s in found]

    def delete_many(self, jobs: Sequence[tuple[str, JobStatus]], *, pipeline: Pipeline) -> None:
        """Adds to `pipeline` the deletion of each (job_id, status) job of this queue, as
        `Job.delete` does for a job not running, without dependencies, group or rate limit
        (opsbot uses none) but without its three reads per job."""
        registries = {
            JobStatus.SCHEDULED: self.queue.scheduled_job_registry,
            JobStatus.DEFERRED: self.queue.deferred_job_registry,
            JobStatus.FINISHED: self.queue.finished_job_registry,
            JobStatus.FAILED: self.queue.failed_job_registry,
            JobStatus.STOPPED: self.queue.failed_job_registry,
            JobStatus.CANCELED: self.queue.canceled_job_registry,
        }
        for job_id, status in jobs:
            if status == JobStatus.QUEUED:  # LREM scans the whole queue: only where it can be
                pipeline.lrem(self.queue.key, 1, job_id)
            if status in registries:
                pipeline.zrem(registries[status].key, job_id)
            job = Job(job_id, connection=self.redis)  # only for RQ's names of its keys
            keys = (job.key, job.dependents_key, job.dependencies_key, job.execution_registry.key)
            pipeline.delete(*keys, Result.get_key(job_id))

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

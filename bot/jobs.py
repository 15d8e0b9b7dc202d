"""RQ queues: every background job opsbot runs is enqueued through `Jobs`.

Job functions are named by dotted path so that this module imports no use case; each entry
point reaches the process's parts through `bot.runtime.current_services()`.
"""

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime

from redis import Redis
from redis.client import Pipeline
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.results import Result

QUEUE_NAME = "opsbot"
JOB_TIMEOUT = 60
RESULT_TTL = 3600
FAILURE_TTL = 7 * 24 * 3600  # failed jobs stay visible (`opsbot jobs failed`) for a week
_ALIVE = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED}
_RUNNING = {JobStatus.STARTED}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def default_retry() -> Retry:
    """Five retries with growing back-off (seconds)."""
    return Retry(max=5, interval=[2, 10, 30, 120, 600])


def make_job_id(*parts: object) -> str:
    """A deterministic RQ job id (only [A-Za-z0-9_-]); unsafe parts are hashed."""
    clean = []
    for part in parts:
        text = str(part)
        if _UNSAFE.search(text):
            text = hashlib.sha1(text.encode()).hexdigest()[:20]
        clean.append(text)
    return "-".join(clean)


class Jobs:
    """Enqueues and schedules jobs once per id; a live job with the same id is kept."""

    def __init__(self, redis: Redis, *, queue_name: str = QUEUE_NAME) -> None:
        self.redis = redis
        self.queue = Queue(queue_name, connection=redis)

    def enqueue(
        self,
        func: str,
        *args: object,
        job_id: str,
        at: datetime | None = None,
        retry: Retry | None = None,
        timeout: int = JOB_TIMEOUT,
    ) -> Job:
        """Enqueues `func(*args)` now, or at `at`; returns the live job when one exists."""
        existing = self._fetch(job_id)
        if existing is not None:
            if existing.get_status(refresh=False) in _ALIVE:
                return existing
            existing.delete()
        options = {
            "job_id": job_id,
            "retry": retry or default_retry(),
            "job_timeout": timeout,
            "result_ttl": RESULT_TTL,
            "failure_ttl": FAILURE_TTL,
        }
        if at is not None:
            return self.queue.enqueue_at(at, func, *args, **options)
        return self.queue.enqueue(func, *args, **options)

    def schedule_many(
        self,
        func: str,
        calls: Sequence[tuple[str, tuple, datetime]],
        *,
        cancel: Sequence[str] = (),
        pipeline: Pipeline | None = None,
    ) -> None:
        """Schedules `func(*args)` at `at` for each (job_id, args, at) by `enqueue`'s rule (a
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
        self._add_scheduled(func, [c for c in calls if status[c[0]] not in _ALIVE], pipe)
        if pipeline is None:
            pipe.execute()

    def _add_scheduled(self, func: str, calls: list, pipe: Pipeline) -> None:
        # What `enqueue_at` writes (RQ's `schedule_job`: SADD of the queue, the job's hash with
        # its status, its score in the schedule), with one SADD for the whole batch.
        if not calls:
            return
        pipe.sadd(self.queue.redis_queues_keys, self.queue.key)
        registry = self.queue.scheduled_job_registry
        for job_id, args, at in calls:
            job = self.queue.create_job(
                func, args=args, job_id=job_id, status=JobStatus.SCHEDULED,
                retry=default_retry(), timeout=JOB_TIMEOUT, result_ttl=RESULT_TTL,
                failure_ttl=FAILURE_TTL,
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

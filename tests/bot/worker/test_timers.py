"""SLA timers: the plan (pure) and, with real workers and SLAs of seconds, what fires."""

from datetime import UTC, datetime, timedelta

import pytest
from redis.connection import Connection
from rq import Queue
from rq.job import JobStatus

from bot.core.jobs import FIRE_TIMER, timer_job_id
from bot.usecases.escalation import sla_clock
from bot.worker.drains import drain
from bot.worker.timers import REGISTRY_KEY, adopt_legacy_timers, due_key, schedule_timers
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


def due(services) -> dict[str, float]:
    """The schedule: each timer id -> its instant."""
    return {member.decode(): score for member, score in services.redis.zrange(
        due_key(services.jobs), 0, -1, withscores=True)}


def registered(services, task_id: int) -> dict[str, str]:
    return {k.decode(): v.decode()
            for k, v in services.redis.hgetall(REGISTRY_KEY.format(task_id)).items()}


def test_each_timer_is_scheduled_at_its_exact_instant_and_registered_with_it(services,
                                                                             config):
    ids = schedule(services, _batch(), now=T0)

    planned = {task.id: plan_timers(config, sla_clock(task), now=T0) for task in _batch()}
    assert ids == {task_id: [timer_job_id(task_id, t.kind, 3) for t in timers]
                   for task_id, timers in planned.items()}
    assert due(services) == {timer_job_id(task_id, t.kind, 3): t.at.timestamp()
                             for task_id, timers in planned.items() for t in timers}
    for task_id, timers in planned.items():
        assert registered(services, task_id) == {
            timer_job_id(task_id, t.kind, 3): t.at.isoformat() for t in timers}
    assert not services.redis.keys("rq:*")  # no RQ job per timer
    before = (due(services), registered(services, 8))
    assert schedule(services, [_batch()[1]], now=T0) == {8: ids[8]}
    assert (due(services), registered(services, 8)) == before


def test_a_registered_timer_is_kept_whether_pending_or_fired(services):
    ids = schedule(services, _batch(), now=T0)
    fired = "timer-8-breach-resolution-3"
    services.redis.zrem(due_key(services.jobs), fired)  # as settle_timers does once it fired

    assert schedule(services, _batch(), now=T0) == ids  # the same generation again

    assert fired not in due(services)  # it does not fire twice
    assert fired in registered(services, 8)
    assert sorted(due(services)) == sorted(i for each in ids.values() for i in each
                                           if i != fired)


def test_the_previous_generation_is_cancelled(services):
    old = schedule(services, _batch(), now=T0)
    moved = [
        _task(TaskStatus.ACCEPTED, id=8, first_response_at=T0, timer_generation=4),
        _task(TaskStatus.NEW, id=9, assignee_id=None, assigned_at=None, timer_generation=4),
    ]

    new = schedule(services, moved, now=T0)

    assert sorted(due(services)) == sorted([*old[7], *new[8], *new[9]])
    for task_id in (8, 9):
        assert sorted(registered(services, task_id)) == sorted(new[task_id])


def test_a_late_earlier_generation_leaves_the_later_one_in_place(services):
    """Two drains may schedule one task's generations in either order (after their commits):
    the later generation's timers stay; the earlier ones fire and do nothing."""
    later = schedule(services, [_task(TaskStatus.ACCEPTED, id=8, first_response_at=T0,
                                      timer_generation=4)], now=T0)
    earlier = schedule(services, [_task(TaskStatus.ASSIGNED, id=8)], now=T0)

    assert set(due(services)) == {*later[8], *earlier[8]}
    assert set(registered(services, 8)) == {*later[8], *earlier[8]}
    newest = _task(TaskStatus.IN_PROGRESS, id=8, first_response_at=T0, timer_generation=5)
    schedule(services, [newest], now=T0)  # the next generation cancels both
    left = set(registered(services, 8))
    assert left and all(i.endswith("-5") for i in left) and set(due(services)) == left


def test_a_task_without_timers_loses_its_earlier_ones(services):
    schedule(services, _batch(), now=T0)
    closed = _task(TaskStatus.CLOSED, id=8, timer_generation=4)
    waiting = _task(TaskStatus.WAITING_CUSTOMER, id=10, first_response_at=T0)

    assert schedule(services, [closed, waiting], now=T0) == {8: [], 10: []}
    assert not services.redis.exists(REGISTRY_KEY.format(8), REGISTRY_KEY.format(10))
    assert not [i for i in due(services) if i.startswith("timer-8-")]


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
    assert round_trips(moved) == one == 2  # the registries, then one transaction


def test_the_previous_versions_timers_are_adopted_once(services):
    """Each timer was an RQ scheduled job on the `<queue>-timers` queue, each task's registry
    a set: the first worker that starts moves the pending ones into the schedule."""
    legacy = Queue(f"{services.jobs.queue.name}-timers", connection=services.redis)
    at = T0 + timedelta(seconds=2)

    def legacy_timer(kind: str, status: JobStatus) -> str:
        job_id = timer_job_id(7, kind, 3)
        legacy.create_job(FIRE_TIMER.function, args=(7, kind, 3, at.isoformat()),
                          job_id=job_id, status=status).save()
        if status == JobStatus.SCHEDULED:
            services.redis.zadd(legacy.scheduled_job_registry.key, {job_id: at.timestamp()})
        services.redis.sadd(REGISTRY_KEY.format(7), job_id)
        return job_id

    pending = legacy_timer("breach-resolution", JobStatus.SCHEDULED)
    fired = legacy_timer("remind-resolution-50", JobStatus.FINISHED)
    services.redis.sadd(REGISTRY_KEY.format(8), "timer-8-breach-resolution-3")  # job expired

    assert adopt_legacy_timers(services.jobs) == 1

    assert due(services) == {pending: at.timestamp()}
    assert registered(services, 7) == {pending: at.isoformat(), fired: at.isoformat()}
    assert not services.redis.exists(REGISTRY_KEY.format(8))
    assert not services.redis.keys("rq:*")
    assert adopt_legacy_timers(services.jobs) == 0  # once per Redis
    schedule(services, [_task(TaskStatus.ASSIGNED, id=7)], now=T0)
    assert pending in due(services) and fired not in due(services)  # kept as they were


def test_an_adoption_that_fails_is_tried_again_by_the_next_worker(services, monkeypatch):
    services.redis.sadd(REGISTRY_KEY.format(7), "timer-7-breach-resolution-3")
    monkeypatch.setattr("bot.worker.timers.Job.fetch_many", lambda *a, **k: 1 / 0)

    with pytest.raises(ZeroDivisionError):
        adopt_legacy_timers(services.jobs)

    monkeypatch.undo()
    assert adopt_legacy_timers(services.jobs) == 0  # it looked again: the set is gone
    assert not services.redis.exists(REGISTRY_KEY.format(7))

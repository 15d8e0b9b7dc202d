"""SLA timers: the plan (pure) and, with real workers and SLAs of seconds, what fires."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.dispatch import dispatch_pending
from bot.timers import plan_timers, push_due_times, timer_job_id
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
        (TaskStatus.NEW, {"assignee_id": None, "assigned_at": None}, 0, [
            ("breach-first_response", 4), ("breach-resolution", 8)]),
        (TaskStatus.WAITING_CUSTOMER, {"first_response_at": T0}, 0, []),
        (TaskStatus.CLOSED, {}, 0, []),
    ],
)  # fmt: skip
def test_plan_timers(config, status, fields, now, expected):
    task = _task(status, **fields)
    assert _kinds(plan_timers(config, task, now=T0 + timedelta(seconds=now))) == expected


def test_a_pause_pushes_due_times_by_the_paused_time(config):
    task = _task(TaskStatus.IN_PROGRESS)
    since, until = T0 + timedelta(seconds=2), T0 + timedelta(seconds=5)
    paused = push_due_times(task, config=config, since=since, until=until)
    assert paused == timedelta(seconds=3)
    assert task.resolution_due == T0 + timedelta(seconds=11)
    assert task.first_response_due == T0 + timedelta(seconds=7)


def test_job_ids_are_deterministic():
    assert timer_job_id(12, "remind-resolution-50", 4) == "timer-12-remind-resolution-50-4"


def test_timers_fire_with_real_workers(database_url, redis_url, tmp_path):
    """One run, four tasks: reminders at 50/75 %, breach -> supervisor + reassign,
    unaccepted -> next agent, accepted -> no offer expiry, waiting pauses the clock."""
    services = make_services(database_url, redis_url, write_rules(tmp_path))
    reminded = new_task(services, sla="normal", accept=True)  # resolution 8 s
    offered = new_task(services, sla="long")  # not accepted: offered on after 3 s
    breached = new_task(services, sla="short", accept=True)  # resolution 5 s
    paused = new_task(services, sla="short", accept=True)
    move(services, paused, Action.WAIT)
    dispatch_pending(services)
    created = task_of(services, reminded).created_at
    original_due = task_of(services, paused).resolution_due
    resumed = []

    def resume_after_4s(elapsed: float) -> None:
        if elapsed >= 4 and not resumed:  # an agent starts again; dispatch settles the pause
            move(services, paused, Action.START)
            dispatch_pending(services)
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

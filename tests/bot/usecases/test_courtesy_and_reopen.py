"""After a closing: a short courtesy ("¡Muchas gracias por todo!", 👍) is recorded on the closed
task and reopens nothing, with the shipped rules.yaml; a real request reopens the task, and the
reopened task's SLA starts again from the reopening."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.usecases.conversation import apply_message
from bot.usecases.escalation import sla_clock
from bot.whatsapp.parsing import InboundMessage
from rules import load_rules, parse_rules, plan_timers
from store.events import Audit, list_events
from store.lifecycle import SYSTEM, Action, Actor, ActorKind
from store.models import Message, OutboxMessage, Task, TaskStatus
from store.tasks import transition_task

SHIPPED = Path(__file__).resolve().parents[3] / "rules.yaml"
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Madrid
RULES = """
version: 1
timezone: UTC
business_hours: {mon-sun: "00:00-24:00"}
reopen_within: 7d
sla: {normal: {first_response: 1h, resolution: 8h, business_hours: false}}
teams:
  support: {supervisor: sam}
agents:
  - {id: ana, name: Ana, teams: [support], slack: U0ANA, capacity: 50}
  - {id: sam, name: Sam, slack: U0SAM}
rules:
  - name: fallback
    then: {team: support}
"""


@pytest.fixture(scope="module")
def shipped():
    return load_rules(SHIPPED)


def write(db, config, text: str, *, at: datetime, wamid: str) -> str:
    message = InboundMessage(wamid=wamid, wa_id="34600000077", user_id=None, name="Carmen Díaz",
                             type="text", at=at, text=text)
    with db.transaction() as session:
        return apply_message(session, config=config, message=message, now=at)


def closed_task(db, config, *, at: datetime = NOW) -> int:
    """A task the customer opened at `at`, accepted and closed an hour later."""
    assert write(db, config, "Mi pedido 4411 no ha llegado", at=at, wamid="wamid.OPEN") == \
        "created"
    with db.transaction() as session:
        task = session.scalars(select(Task)).one()
        if task.assignee_id is None:
            transition_task(session, task=task, action=Action.ASSIGN, actor=SYSTEM,
                            assignee_id="ana", now=at)
        agent = Actor(ActorKind.AGENT, task.assignee_id)
        transition_task(session, task=task, action=Action.ACCEPT, actor=agent, now=at)
        transition_task(session, task=task, action=Action.CLOSE, actor=agent,
                        now=at + timedelta(hours=1))
        return task.id


def state(db, task_id: int):
    with db.transaction() as session:
        task = session.get(Task, task_id)
        outbox = session.scalar(select(func.count(OutboxMessage.id)))
        return (task.status, task.assignee_id, task.version, task.timer_generation,
                task.resolution_due, outbox, session.scalar(select(func.count(Task.id))))


@pytest.mark.parametrize("text", ["¡Muchas gracias por todo!", "Thank you so much! 👍",
                                  "Ok perfecto 👍", "Perfecto, muchas gracias Ana 😊", "👍"])
def test_a_courtesy_after_closing_is_recorded_on_the_closed_task_and_reopens_nothing(
        db, shipped, text):
    task_id = closed_task(db, shipped)
    before = state(db, task_id)
    later = NOW + timedelta(hours=2)
    assert write(db, shipped, text, at=later, wamid="wamid.THANKS") == "recorded"
    assert state(db, task_id) == before  # closed, untouched: no notification, no reply
    with db.transaction() as session:
        stored = session.scalars(
            select(Message).where(Message.provider_message_id == "wamid.THANKS")).one()
        assert stored.task_id == task_id
        last = list_events(session, task_id=task_id)[-1]
        actor = f"customer:contact-{stored.contact_id}"  # never the number: actors are in clear
        assert (last.action, last.actor, last.at) == (Audit.MESSAGE, actor, later)
        assert last.details == {"message_id": stored.id, "type": "text", "text": text,
                                "reopened": False}


@pytest.mark.parametrize("text", ["Gracias, pero sigue sin llegar", "ok, my order is broken",
                                  "Thanks! Where is my refund?"])
def test_a_request_that_also_says_thanks_reopens_the_task(db, shipped, text):
    task_id = closed_task(db, shipped)
    assert write(db, shipped, text, at=NOW + timedelta(hours=2), wamid="wamid.AGAIN") == \
        "reopened"
    assert state(db, task_id)[0] == TaskStatus.ASSIGNED


def test_a_courtesy_long_after_the_closing_is_kept_on_no_task(db, shipped):
    task_id = closed_task(db, shipped)
    later = NOW + shipped.reopen_within + timedelta(days=1)
    assert write(db, shipped, "¡Muchas gracias!", at=later, wamid="wamid.LATE") == "recorded"
    with db.transaction() as session:
        stored = session.scalars(
            select(Message).where(Message.provider_message_id == "wamid.LATE")).one()
        assert stored.task_id is None
        assert list_events(session, task_id=task_id)[-1].action == Action.CLOSE


def test_a_rating_after_closing_is_still_a_rating(db, shipped):
    task_id = closed_task(db, shipped)
    assert write(db, shipped, "5", at=NOW + timedelta(hours=2), wamid="wamid.RATE") == "rated"
    assert state(db, task_id)[0] == TaskStatus.CLOSED


def test_a_reopened_task_gets_its_due_times_from_the_reopening(db):
    config = parse_rules(RULES)
    task_id = closed_task(db, config)
    with db.transaction() as session:
        assert session.get(Task, task_id).resolution_due == NOW + timedelta(hours=8)
    reopened_at = NOW + timedelta(days=2)
    assert write(db, config, "Vuelve a fallar", at=reopened_at, wamid="wamid.REOPEN") == \
        "reopened"
    with db.transaction() as session:
        task = session.get(Task, task_id)
        assert task.first_response_due == reopened_at + timedelta(hours=1)
        assert task.resolution_due == reopened_at + timedelta(hours=8)
        [reopen] = list_events(session, task_id=task_id, action=Action.REOPEN)
        assert reopen.details["resolution_due"] == (reopened_at + timedelta(hours=8)).isoformat()
        # the new timers: the breach at the new due time, not one already past
        breaches = [t.at for t in plan_timers(config, sla_clock(task), now=reopened_at)
                    if t.kind == "breach-resolution"]
        assert breaches == [reopened_at + timedelta(hours=8)]
        # and the reminders count from the reopening, not from the creation two days before
        assert task.sla_started_at == reopened_at
        reminders = {t.kind: t.at for t in plan_timers(config, sla_clock(task), now=reopened_at)
                     if t.kind.startswith("remind-")}
        assert reminders["remind-resolution-50"] == reopened_at + timedelta(hours=4)


@pytest.mark.parametrize(("text", "rating"), [("⭐⭐⭐", 3), ("⭐⭐⭐⭐⭐", 5), ("4/5", 4)])
def test_a_star_rating_after_closing_is_a_rating_even_where_a_rule_ignores_emoji(
        db, shipped, text, rating):
    task_id = closed_task(db, shipped)
    assert write(db, shipped, text, at=NOW + timedelta(hours=2), wamid="wamid.RATE") == "rated"
    with db.transaction() as session:
        task = session.get(Task, task_id)
        assert (task.status, task.rating) == (TaskStatus.CLOSED, rating)

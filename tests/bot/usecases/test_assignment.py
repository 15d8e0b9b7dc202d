"""assign_task: the explained routing decision, applied, audited and notified."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.usecases.assignment import assign_task
from bot.usecases.conversation import apply_message
from bot.whatsapp.parsing import InboundMessage
from rules import parse_rules
from store.agents import get_agent_states, set_away, touch_assigned
from store.contacts import upsert_contact
from store.events import Audit, list_events
from store.lifecycle import SYSTEM, Action
from store.models import OutboxMessage, Task, TaskStatus
from store.tasks import create_task, transition_task

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
RULES = """
version: 1
timezone: Europe/Madrid
business_hours: {mon-sun: "00:00-24:00"}
sla: {normal: {first_response: 4h, resolution: 24h}}
teams:
  support: {supervisor: ana, strategy: least_loaded}
  logistics: {supervisor: ana, strategy: sticky}
agents:
  - {id: ana, name: Ana, teams: [support, logistics], slack: U0ANA, capacity: 5}
  - {id: bea, name: Bea, teams: [support, logistics], telegram: 1002, capacity: 5}
"""


@pytest.fixture
def config():
    return parse_rules(RULES)


def new_task(session, *, team="support", wa_id="34600000001"):
    contact, _ = upsert_contact(session, wa_id=wa_id, user_id=None, name="Cliente", now=NOW)
    return create_task(
        session,
        title="Ayuda",
        category="support",
        priority="normal",
        actor=SYSTEM,
        contact_id=contact.id,
        team=team,
        now=NOW,
    )


def test_routes_to_the_least_loaded_agent_and_explains_it(db, config):
    with db.transaction() as session:
        touch_assigned(session, agent_id="ana", now=NOW)
        task = new_task(session)
        result = assign_task(session, config=config, task=task, now=NOW)
        assert (result.agent_id, task.status, task.assignee_id) == (
            "bea",
            TaskStatus.ASSIGNED,
            "bea",
        )
        routed = [e for e in list_events(session, task_id=task.id) if e.action == Audit.ROUTED]
        [event] = routed
        assert event.details["automatic"] is True
        assert {c["agent"] for c in event.details["candidates"]} == {"ana", "bea"}
        [note] = session.scalars(select(OutboxMessage)).all()
        assert (note.kind, note.agent_id, note.channel) == ("assigned", "bea", "telegram")
        assert get_agent_states(session)["bea"].last_assigned_at == NOW


def test_nobody_available_leaves_the_task_new_with_an_unrouted_event(db, config):
    with db.transaction() as session:
        for agent in ("ana", "bea"):
            assert set_away(session, agent_id=agent, away=True, now=NOW)
        task = new_task(session)
        result = assign_task(session, config=config, task=task, now=NOW)
        assert result.agent_id is None
        assert task.status == TaskStatus.NEW
        assert list_events(session, task_id=task.id)[-1].action == Audit.UNROUTED


def test_excluded_agents_are_skipped_and_an_assigned_task_is_reassigned(db, config):
    with db.transaction() as session:
        task = new_task(session)
        first = assign_task(session, config=config, task=task, now=NOW)
        second = assign_task(session, config=config, task=task, now=NOW, exclude=[first.agent_id])
        assert second.agent_id != first.agent_id
        assert task.assignee_id == second.agent_id
        actions = [e.action for e in list_events(session, task_id=task.id)]
        assert Action.REASSIGN in actions
        assert len(session.scalars(select(OutboxMessage)).all()) == 2


def test_a_sticky_team_gives_the_customer_their_previous_agent(db, config):
    with db.transaction() as session:
        old = new_task(session, team="logistics")
        transition_task(
            session, task=old, action=Action.ASSIGN, actor=SYSTEM, assignee_id="bea", now=NOW
        )
        touch_assigned(session, agent_id="ana", now=NOW)  # ana would win on load otherwise
        task = new_task(session, team="logistics")
        result = assign_task(session, config=config, task=task, now=NOW)
        assert result.agent_id == "bea"
        assert "sticky" in result.summary


def customer_message(number: int) -> InboundMessage:
    return InboundMessage(wamid=f"wamid.B{number}", wa_id=f"3460000010{number}", user_id=None,
                          name=f"Cliente {number}", type="text", at=NOW, text="Necesito ayuda")


def routing_of(session) -> list[tuple]:
    """Each task's assignee, its routed event's details and its "assigned" notification."""
    found = []
    for task in session.scalars(select(Task).order_by(Task.id)):
        routed = [e.details for e in list_events(session, task_id=task.id)
                  if e.action == Audit.ROUTED]
        notes = session.scalars(select(OutboxMessage.agent_id)
                                .where(OutboxMessage.task_id == task.id)).all()
        found.append((task.assignee_id, routed, notes))
    return found


class Rollback(Exception):
    pass


def test_a_batch_in_one_transaction_routes_as_one_transaction_per_message_would(db, config):
    # Ana already has a task: a batch must count its own assignments toward the load, as
    # separate transactions read them from the database.
    with db.transaction() as session:
        transition_task(session, task=new_task(session, wa_id="34600000999"),
                        action=Action.ASSIGN, actor=SYSTEM, assignee_id="ana", now=NOW)
    with pytest.raises(Rollback), db.transaction() as session:
        for number in range(5):
            with session.begin_nested():
                apply_message(session, config=config, message=customer_message(number), now=NOW)
        batch = routing_of(session)
        raise Rollback  # leave the database as it was for the separate transactions
    for number in range(5):
        with db.transaction() as session:
            apply_message(session, config=config, message=customer_message(number), now=NOW)
    with db.transaction() as session:
        separate = routing_of(session)
    assert [assignee for assignee, _, _ in batch] == ["ana", "bea", "ana", "bea", "ana", "bea"]
    assert batch == separate


@pytest.mark.parametrize("clear_caches", [True, False], ids=["info-cleared", "listeners-only"])
def test_a_rolled_back_savepoint_leaves_nothing_stale_in_the_transaction(db, config,
                                                                        clear_caches):
    with db.transaction() as session:
        with session.begin_nested():
            apply_message(session, config=config, message=customer_message(1), now=NOW)
        try:
            with session.begin_nested():
                apply_message(session, config=config, message=customer_message(2), now=NOW)
                held = session.scalars(select(Task).order_by(Task.id.desc())).first()
                assert held.assignee_id == "bea"
                raise Rollback
        except Rollback:
            if clear_caches:
                session.info.clear()
        # The same customer again: contact, message and task are created anew (on SQLite
        # with the ids of the rolled-back rows), and bea's rolled-back task is not counted.
        again = replace(customer_message(2), wamid="wamid.B2-again")
        assert apply_message(session, config=config, message=again, now=NOW) == "created"
        tasks = session.scalars(select(Task).order_by(Task.id)).all()
        assert [task.assignee_id for task in tasks] == ["ana", "bea"]
        assert get_agent_states(session)["bea"].open_tasks == 1
    with db.transaction() as session:
        assert [e.action for e in list_events(session, task_id=tasks[-1].id)] == [
            Audit.CREATED, Action.ASSIGN, Audit.ROUTED]
        assert len(session.scalars(select(OutboxMessage)).all()) == 2

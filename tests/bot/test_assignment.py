"""assign_task: the explained routing decision, applied, audited and notified."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.assignment import assign_task
from rules import parse_rules
from store.agents import get_agent_states, set_away, touch_assigned
from store.contacts import upsert_contact
from store.events import Audit, list_events
from store.lifecycle import SYSTEM, Action
from store.models import OutboxMessage, TaskStatus
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
    contact = upsert_contact(session, wa_id=wa_id, user_id=None, name="Cliente", now=NOW)
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

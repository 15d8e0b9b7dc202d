"""Agents' routing state: read once per transaction, kept equal to a fresh read."""

from datetime import UTC, datetime

from sqlalchemy import select

from store.agents import count_open_tasks, get_agent_states, set_away, touch_assigned
from store.lifecycle import SYSTEM, Action, Actor, ActorKind
from store.models import AgentState
from store.tasks import create_task, transition_task

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ANA, LUIS = Actor(ActorKind.AGENT, "ana"), Actor(ActorKind.AGENT, "luis")

# Every change of an open task's assignee, and of an agent's row, in one transaction.
STEPS = [
    ("assign", lambda s, t: transition_task(s, task=t, action=Action.ASSIGN, actor=SYSTEM,
                                            assignee_id="ana", now=NOW)),
    ("accept", lambda s, t: transition_task(s, task=t, action=Action.ACCEPT, actor=ANA, now=NOW)),
    ("reassign", lambda s, t: transition_task(s, task=t, action=Action.REASSIGN, actor=SYSTEM,
                                              assignee_id="luis", now=NOW)),
    ("decline", lambda s, t: transition_task(s, task=t, action=Action.DECLINE, actor=LUIS,
                                             now=NOW)),
    ("claim", lambda s, t: transition_task(s, task=t, action=Action.ACCEPT, actor=LUIS, now=NOW)),
    ("close", lambda s, t: transition_task(s, task=t, action=Action.CLOSE, actor=LUIS, now=NOW)),
    ("reopen", lambda s, t: transition_task(s, task=t, action=Action.REOPEN, actor=SYSTEM,
                                            now=NOW)),
    ("touch", lambda s, t: touch_assigned(s, agent_id="marta", now=NOW)),
    ("away", lambda s, t: set_away(s, agent_id="luis", away=True, now=NOW)),
    ("created assigned", lambda s, t: create_task(s, title="y", category="sales",
                                                  priority="normal", actor=SYSTEM,
                                                  assignee_id="ana", now=NOW)),
]


def fresh_states(session) -> dict:
    """What a new transaction would read: the agents' rows and the open tasks counted by
    the database."""
    counts = count_open_tasks(session)
    rows = {row.agent_id: row for row in session.scalars(select(AgentState))}
    return {agent: (bool(row and row.away), counts.get(agent, 0),
                    row.last_assigned_at if row else None)
            for agent in {*rows, *counts} for row in [rows.get(agent)]}


def test_the_transaction_copy_follows_every_change_as_a_fresh_read_would(db):
    with db.transaction() as session:
        task = create_task(session, title="x", category="sales", priority="normal",
                           actor=SYSTEM, now=NOW)
        get_agent_states(session)  # loaded before any change: from now on kept in memory
        for name, step in STEPS:
            step(session, task)
            cached = {agent: (state.away, state.open_tasks, state.last_assigned_at)
                      for agent, state in get_agent_states(session).items()}
            assert cached == fresh_states(session), name
    with db.transaction() as session:
        assert {agent: (state.away, state.open_tasks, state.last_assigned_at)
                for agent, state in get_agent_states(session).items()} == cached


def test_a_rolled_back_savepoint_drops_the_copy(db):
    with db.transaction() as session:
        task = create_task(session, title="x", category="sales", priority="normal",
                           actor=SYSTEM, now=NOW)
        assert get_agent_states(session) == {}
        savepoint = session.begin_nested()
        transition_task(session, task=task, action=Action.ASSIGN, actor=SYSTEM,
                        assignee_id="ana", now=NOW)
        touch_assigned(session, agent_id="ana", now=NOW)
        assert get_agent_states(session)["ana"].open_tasks == 1
        savepoint.rollback()
        assert get_agent_states(session) == {}

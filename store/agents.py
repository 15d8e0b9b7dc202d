"""Agents' runtime state (away, last assignment, open tasks); who they are lives in rules.yaml.

Routing reads every agent's state for each task, so a transaction loads it once and keeps
that copy current as it changes tasks and agents (`transition_task` and `create_task` report
every change of an open task's assignee through `note_load`). A batch of messages applied in
one transaction therefore routes exactly as if each message had its own. The copy lives in
`session.info` and is dropped at any rollback (a savepoint's too) and at commit.
"""

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, SessionTransaction

from rules import AgentState as RoutingState
from store.models import OPEN_STATUSES, AgentState, Task
from store.types import utcnow

_ROUTING = "store.agents.routing"  # the session.info key of this transaction's copy


@dataclass
class _Routing:
    rows: dict[str, AgentState]  # also keeps them in the session's (weak) identity map
    states: dict[str, RoutingState]


def get_agent_states(session: Session) -> dict[str, RoutingState]:
    """Every known agent's routing state: away flag, open tasks, last assignment.

    Agents with neither a state row nor an open task are absent (routing treats them as free).
    """
    return dict(_routing(session).states)


def count_open_tasks(session: Session) -> dict[str, int]:
    """Open tasks per assignee, for routing by load and capacity (read from the database)."""
    query = (
        select(Task.assignee_id, func.count())
        .where(Task.status.in_(list(OPEN_STATUSES)), Task.assignee_id.is_not(None))
        .group_by(Task.assignee_id)
    )
    return {agent: count for agent, count in session.execute(query)}


def note_load(session: Session, *, before: str | None, after: str | None) -> None:
    """Moves one open task from agent `before` to agent `after` (None: nobody) in this
    transaction's copy of the routing states, when there is one."""
    routing = session.info.get(_ROUTING)
    if routing is None or before == after:
        return
    for agent_id, change in ((before, -1), (after, 1)):
        if agent_id is not None:
            state = routing.states.get(agent_id) or RoutingState(agent_id)
            _keep(routing, replace(state, open_tasks=state.open_tasks + change))


def set_away(session: Session, *, agent_id: str, away: bool, now: datetime | None = None) -> bool:
    """Marks the agent away (no new tasks) or back; returns True when that changed anything."""
    routing = _routing(session)
    row = _row(session, routing, agent_id)
    if bool(row.away) == away:
        return False
    row.away = away
    row.away_since = (now or utcnow()) if away else None
    _keep(routing, replace(_state(routing, agent_id), away=away))
    session.flush()
    return True


def touch_assigned(session: Session, *, agent_id: str, now: datetime | None = None) -> None:
    """Records that the agent was just given a task (round robin reads this); written to the
    database with the next flush."""
    routing = _routing(session)
    row = _row(session, routing, agent_id)
    row.last_assigned_at = now or utcnow()
    _keep(routing, replace(_state(routing, agent_id), last_assigned_at=row.last_assigned_at))


def _routing(session: Session) -> _Routing:
    routing = session.info.get(_ROUTING)
    if routing is None:
        routing = session.info[_ROUTING] = _load(session)
        if not event.contains(session, "after_soft_rollback", _forget):
            event.listen(session, "after_soft_rollback", _forget)
            event.listen(session, "after_transaction_end", _forget_at_end)
    return routing


def _forget(session: Session, *_args) -> None:
    session.info.pop(_ROUTING, None)


def _forget_at_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the transaction itself, not a savepoint, ended
        _forget(session)


def _load(session: Session) -> _Routing:
    open_tasks = count_open_tasks(session)
    rows = {row.agent_id: row for row in session.scalars(select(AgentState))}
    states = {
        agent_id: RoutingState(
            agent_id=agent_id,
            away=bool(row and row.away),
            open_tasks=open_tasks.get(agent_id, 0),
            last_assigned_at=row.last_assigned_at if row else None,
        )
        for agent_id in {*rows, *open_tasks}
        for row in [rows.get(agent_id)]
    }
    return _Routing(rows, states)


def _row(session: Session, routing: _Routing, agent_id: str) -> AgentState:
    row = routing.rows.get(agent_id)
    if row is None:  # an agent's first assignment ever: it may have been written meanwhile
        row = session.get(AgentState, agent_id)
        if row is None:
            row = AgentState(agent_id=agent_id, away=False)
            session.add(row)
        routing.rows[agent_id] = row
    return row


def _state(routing: _Routing, agent_id: str) -> RoutingState:
    return routing.states.get(agent_id) or RoutingState(agent_id)


def _keep(routing: _Routing, state: RoutingState) -> None:
    # An agent with neither a state row nor an open task is absent, as when loaded.
    if state.open_tasks or state.agent_id in routing.rows:
        routing.states[state.agent_id] = state
    else:
        routing.states.pop(state.agent_id, None)

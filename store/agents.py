"""Agents' runtime state (away, last assignment); who they are lives in rules.yaml."""

from datetime import datetime

from sqlalchemy.orm import Session

from rules import AgentState as RoutingState
from store.models import AgentState
from store.tasks import count_open_tasks
from store.types import utcnow


def get_agent_states(session: Session) -> dict[str, RoutingState]:
    """Every known agent's routing state: away flag, open tasks, last assignment.

    Agents with neither a state row nor an open task are absent (routing treats them as free).
    """
    open_tasks = count_open_tasks(session)
    rows = {row.agent_id: row for row in session.query(AgentState)}
    return {
        agent_id: RoutingState(
            agent_id=agent_id,
            away=bool(row and row.away),
            open_tasks=open_tasks.get(agent_id, 0),
            last_assigned_at=row.last_assigned_at if row else None,
        )
        for agent_id in {*rows, *open_tasks}
        for row in [rows.get(agent_id)]
    }


def _state(session: Session, agent_id: str) -> AgentState:
    row = session.get(AgentState, agent_id)
    if row is None:
        row = AgentState(agent_id=agent_id, away=False)
        session.add(row)
    return row


def set_away(session: Session, *, agent_id: str, away: bool, now: datetime | None = None) -> bool:
    """Marks the agent away (no new tasks) or back; returns True when that changed anything."""
    row = _state(session, agent_id)
    if bool(row.away) == away:
        return False
    row.away = away
    row.away_since = (now or utcnow()) if away else None
    session.flush()
    return True


def touch_assigned(session: Session, *, agent_id: str, now: datetime | None = None) -> None:
    """Records that the agent was just given a task (round robin reads this)."""
    _state(session, agent_id).last_assigned_at = now or utcnow()
    session.flush()

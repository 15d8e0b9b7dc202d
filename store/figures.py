"""What every KPI figure shares: the period, the filters, a bar, and the names of the rows
with no team or no agent. store.kpis, store.satisfaction and store.reports build on it (it
imports none of them, so that each can import it)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from store.models import Task

NO_TEAM = "(no team)"
UNASSIGNED = "(unassigned)"
NO_CATEGORY = "(no category)"
RATING_SCALE = range(1, 6)


@dataclass(frozen=True)
class Period:
    since: datetime  # UTC, included
    until: datetime  # UTC, included


@dataclass(frozen=True)
class KpiFilters:
    team: str | None = None
    agent: str | None = None  # an assignee id, or UNASSIGNED
    category: str | None = None


@dataclass(frozen=True)
class Bar:
    key: str  # for store.kpis.list_kpi_tasks
    label: str
    count: int


def filter_conditions(filters: KpiFilters, *, team: Any, agent: Any, category: Any) -> list:
    """The WHERE conditions of `filters` on the given team, agent and category columns."""
    conditions = []
    if filters.team:
        conditions.append(team == filters.team)
    if filters.category:
        conditions.append(category == filters.category)
    if filters.agent == UNASSIGNED:
        conditions.append(agent.is_(None))
    elif filters.agent:
        conditions.append(agent == filters.agent)
    return conditions


def task_conditions(filters: KpiFilters) -> list:
    """`filters` on a task: its team, assignee and category now."""
    return filter_conditions(filters, team=Task.team, agent=Task.assignee_id,
                             category=Task.category)

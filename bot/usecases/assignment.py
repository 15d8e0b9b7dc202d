"""Routing a task to an agent: the explained choice of `rules.route`, applied and audited."""

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from notifiers.queueing import queue_notification
from rules import RoutingResult, RulesConfig, Strategy, route
from store.agents import get_agent_states, touch_assigned
from store.events import Audit, record_event
from store.lifecycle import SYSTEM, Action
from store.models import Task, TaskStatus
from store.tasks import find_previous_assignee, transition_task


def assign_task(
    session: Session,
    *,
    config: RulesConfig,
    task: Task,
    now: datetime,
    exclude: Collection[str] = (),
    new_task: bool = False,
) -> RoutingResult:
    """Routes `task` (sticky = the agent of the customer's previous task) and assigns it.

    Writes `routed` (agent, summary, candidates, automatic) or `unrouted`, and queues the
    "assigned" notification (`new_task`: created in this transaction, so that no notification
    about it can be queued yet). Returns the routing result (agent_id None = nobody
    available).
    """
    result = route(
        config,
        team=task.team,
        skills=list(task.skills or ()),
        language=task.language,
        agents=get_agent_states(session),
        now=now,
        last_agent=_previous_agent(session, task) if _sticky(config, task.team) else None,
        exclude=exclude,
    )
    details = _routing_details(result)
    if result.agent_id is None:
        record_event(session, task=task, actor=SYSTEM.label, action=Audit.UNROUTED,
                     details=details, at=now)
        return result
    action = Action.ASSIGN if task.status == TaskStatus.NEW else Action.REASSIGN
    transition_task(session, task=task, action=action, actor=SYSTEM,
                    assignee_id=result.agent_id, reason=result.summary, now=now)
    touch_assigned(session, agent_id=result.agent_id, now=now)
    record_event(session, task=task, actor=SYSTEM.label, action=Audit.ROUTED,
                 details=details, at=now)
    notify_agent(session, config=config, kind="assigned", task=task, agent_id=result.agent_id,
                 dedupe_key=f"assigned:{task.id}:{task.timer_generation}",
                 details={"summary": result.summary}, new_key=new_task)
    return result


def _sticky(config: RulesConfig, team: str | None) -> bool:
    # Only a sticky team reads the previous agent: the others need not look it up.
    found = config.teams.get(team) if team else None
    return found is not None and found.strategy is Strategy.sticky


def _routing_details(result: RoutingResult) -> dict[str, Any]:
    candidates = [{"agent": c.agent_id, "chosen": c.chosen, "reason": c.reason}
                  for c in result.candidates]
    return {"agent": result.agent_id, "team": result.team, "summary": result.summary,
            "candidates": candidates, "automatic": True}


def _previous_agent(session: Session, task: Task) -> str | None:
    if task.contact_id is None:
        return None
    return find_previous_assignee(session, contact_id=task.contact_id, task_id=task.id)


def notify_agent(session: Session, *, config: RulesConfig, kind: str, task: Task,
                 agent_id: str, dedupe_key: str, details: dict | None = None,
                 new_key: bool = False) -> None:
    """Queues a notification to an agent (NOTIFIERS' `queue_notification`)."""
    queue_notification(session, config=config, kind=kind, task=task, agent_id=agent_id,
                       dedupe_key=dedupe_key, details=details, new_key=new_key)

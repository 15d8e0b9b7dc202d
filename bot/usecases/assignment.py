"""Routing a task to an agent: the explained choice of `rules.route`, applied and audited.

A task nobody can take waits for its team: one `unrouted` event and one `waiting` card (team
channel, else supervisor) per wait; `route_waiting` routes the waiting tasks again when
someone may have become available (shift start, `back`, capacity freed).
"""

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from notifiers.notifications import NotificationKind
from notifiers.queueing import message_details, queue_notification, team_recipients
from rules import RoutingResult, RulesConfig, Strategy, route
from store.agents import get_agent_states, touch_assigned
from store.events import Audit, list_events, record_event
from store.lifecycle import SYSTEM, Action
from store.models import Message, OutboxMessage, Task, TaskStatus
from store.tasks import find_previous_assignee, list_waiting_tasks, transition_task

WAITING_BATCH = 50  # waiting tasks routed again per call (oldest first): bounds one transaction


def assign_task(
    session: Session,
    *,
    config: RulesConfig,
    task: Task,
    now: datetime,
    exclude: Collection[str] = (),
    new_task: bool = False,
    message: Message | None = None,
) -> RoutingResult:
    """Routes `task` (sticky = the agent of the customer's previous task) and assigns it.

    Writes `routed` (agent, summary, candidates, automatic) and queues the "assigned"
    notification (`new_task`: created in this transaction, so that no notification about it
    can be queued yet). When nobody is available, a task without an assignee starts waiting:
    `unrouted` and the `waiting` card, once per wait (a later attempt that still finds nobody
    writes nothing). Returns the routing result (agent_id None = nobody available).
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
    # The customer's message that brought the task here is on its card, without a look-up.
    shown = message_details(message) if message is not None else {}
    if result.agent_id is None:
        _start_waiting(session, config, task, details, shown, now=now, new_task=new_task)
        return result
    action = Action.ASSIGN if task.status == TaskStatus.NEW else Action.REASSIGN
    transition_task(session, task=task, action=action, actor=SYSTEM,
                    assignee_id=result.agent_id, reason=result.summary, now=now)
    touch_assigned(session, agent_id=result.agent_id, now=now)
    record_event(session, task=task, actor=SYSTEM.label, action=Audit.ROUTED,
                 details=details, at=now)
    notify_agent(session, config=config, kind="assigned", task=task, agent_id=result.agent_id,
                 dedupe_key=f"assigned:{task.id}:{task.timer_generation}",
                 details={"summary": result.summary, "why": why_you(task, result), **shown},
                 new_key=new_task)
    return result


def why_you(task: Task, result: RoutingResult) -> str:
    """The card's one routing line: `support · skill hardware · least loaded (1 open of 5)`."""
    chosen = next((c for c in result.candidates if c.chosen), None)
    reason = chosen.reason.removeprefix("chosen: ") if chosen else result.summary
    skills = ", ".join(task.skills or ())
    parts = [result.team, f"skill {skills}" if skills else None, reason]
    return " · ".join(part for part in parts if part)


def _start_waiting(session: Session, config: RulesConfig, task: Task, details: dict,
                   shown: dict, *, now: datetime, new_task: bool) -> None:
    """Audits `unrouted` and posts the waiting card, unless this wait was audited already."""
    generation = task.timer_generation  # every transition bumps it: one wait, one generation
    if not new_task and any(e.details.get("generation") == generation for e in
                            list_events(session, task_id=task.id, action=Audit.UNROUTED)):
        return
    record_event(session, task=task, actor=SYSTEM.label, action=Audit.UNROUTED,
                 details={**details, "generation": generation}, at=now)
    if task.assignee_id is None:  # an offer nobody else can take stays with its assignee
        notify_team(session, config=config, kind=NotificationKind.WAITING, task=task,
                    dedupe_key=f"waiting-{task.id}-{generation}",
                    details={"summary": details["summary"], **shown}, new_key=new_task)


def route_waiting(session: Session, *, config: RulesConfig, teams: Collection[str],
                  now: datetime) -> list[RoutingResult]:
    """Routes again the tasks of `teams` that wait for an agent (new, unassigned), oldest
    first, up to WAITING_BATCH: called when an agent of those teams may have become available
    (their shift starts, they free capacity). Returns each task's routing result."""
    waiting = list_waiting_tasks(session, teams=teams, limit=WAITING_BATCH)
    return [assign_task(session, config=config, task=task, now=now,
                        exclude=tuple(task.declined_by)) for task in waiting]


def notify_team(session: Session, *, config: RulesConfig, kind: str, task: Task,
                dedupe_key: str, details: dict | None = None,
                new_key: bool = False) -> OutboxMessage | None:
    """Queues a card about `task` for its team: the team channel, else the team supervisor
    (nobody for a task of no team). Returns the row, None when queued before or nobody."""
    if team_recipients(config, task.team):
        agent_id = None
    else:
        agent_id = config.supervisor_of(task.team)
        if agent_id is None:
            return None
    return queue_notification(session, config=config, kind=kind, task=task, agent_id=agent_id,
                              dedupe_key=dedupe_key, details=details, new_key=new_key)


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

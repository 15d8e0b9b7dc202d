"""SLA escalation: what a timer does when it fires (remind, run the breach ladder, re-offer
an unaccepted task), and settling the pauses of tasks that waited on the customer.

The worker schedules each task's timers (`bot.worker.timers`) from `rules.plan_timers`; a
timer that fires re-reads its task and does nothing unless the task is still in the timer's
generation and the plan still has it. Notifications carry a dedupe key per
task/kind/instant, so re-runs are harmless. Called inside the caller's transaction.
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from bot.usecases.assignment import assign_task, notify_team, route_waiting
from bot.usecases.lateness import queue_late_summary
from notifiers.queueing import queue_notification, team_recipients
from rules import UNACCEPTED, Priority, RulesConfig, SlaClock, plan_timers, push_due_times
from rules.sla import LATE_SUMMARY
from store.events import Audit, list_events, list_wait_events, record_event
from store.lifecycle import SYSTEM
from store.models import OPEN_STATUSES, Task, TaskEvent, TaskStatus
from store.tasks import set_due_times


class TimerOutcome(StrEnum):
    """What a fired timer did."""

    GONE = "task gone"
    MOVED_ON = "task moved on"  # a later generation of timers replaced this one
    NO_LONGER_APPLIES = "no longer applies"
    ALREADY_DONE = "already done"  # a re-run: the reminder or escalation is audited
    REMINDED = "reminded"
    ESCALATED = "escalated"
    REOFFERED = "offer expired"  # offered to the next agent (or nobody else is available)
    SUMMARIZED = "late arrivals summarized"  # the team's summary card of tasks born late


def sla_clock(task: Task) -> SlaClock:
    """What timer planning reads of `task`."""
    running = task.status in OPEN_STATUSES and task.status != TaskStatus.WAITING_CUSTOMER
    offered = task.assigned_at if task.status == TaskStatus.ASSIGNED else None
    return SlaClock(
        created_at=task.sla_started_at or task.created_at, priority=task.priority,
        sla_policy=task.sla_policy, running=running, offered_at=offered, assignee=task.assignee_id,
        first_response_due=task.first_response_due, first_response_at=task.first_response_at,
        resolution_due=task.resolution_due, late_summary_at=task.late_summary_at,
    )


def fire_timer(session: Session, *, config: RulesConfig, task_id: int, kind: str,
               generation: int, at_iso: str, now: datetime) -> TimerOutcome:
    """Acts on one fired timer unless its task moved on or the plan no longer has it."""
    task = session.get(Task, task_id)
    if task is None:
        return TimerOutcome.GONE
    if task.timer_generation != generation:
        return TimerOutcome.MOVED_ON
    planned = plan_timers(config, sla_clock(task), now=now)
    if not any(t.kind == kind and t.at.isoformat() == at_iso for t in planned):
        return TimerOutcome.NO_LONGER_APPLIES
    return handle_timer(session, config, task, kind, at_iso, now=now)


def settle_pauses(session: Session, config: RulesConfig, tasks: list[Task]) -> None:
    """The SLA clock stops while the task waits on the customer. Called by drains
    before they schedule the tasks' timers: for every wait that has ended (a transition out of
    waiting_customer) and is not settled yet, push the due times by the pause and write a
    `sla_resumed` audit event (details: wait_event, paused_seconds), so it is done once,
    whichever path (customer message, agent command, close) ended the wait. One query for
    all `tasks`: only their waits and settlements."""
    events = list_wait_events(session, task_ids=[task.id for task in tasks]) if tasks else {}
    for task in tasks:
        if task.id in events:
            _settle(session, config, task, events[task.id])


def _settle(session: Session, config: RulesConfig, task: Task, events: list[TaskEvent]) -> None:
    settled = {e.details.get("wait_event") for e in events if e.action == Audit.SLA_RESUMED}
    waiting = None
    for event in events:
        if event.to_status == TaskStatus.WAITING_CUSTOMER:
            waiting = event
        elif waiting is not None and event.from_status == TaskStatus.WAITING_CUSTOMER:
            if waiting.id not in settled:
                _resume(session, config, task, waiting, event)
            waiting = None


def _resume(session: Session, config: RulesConfig, task: Task, waiting: TaskEvent,
            resumed: TaskEvent) -> None:
    pushed = push_due_times(config, sla_clock(task), since=waiting.at, until=resumed.at)
    set_due_times(session, task=task, first_response_due=pushed.first_response_due,
                  resolution_due=pushed.resolution_due)
    record_event(session, task=task, actor=SYSTEM.label, action=Audit.SLA_RESUMED,
                 at=resumed.at, details={"wait_event": waiting.id,
                                         "paused_seconds": pushed.paused.total_seconds()})


def handle_timer(session: Session, config: RulesConfig, task: Task, kind: str, at_iso: str, *,
                 now: datetime) -> TimerOutcome:
    """Acts on a timer that still applies: remind, escalate a breach, re-offer the task, or
    summarise the team's late arrivals."""
    if kind == UNACCEPTED:
        return expire_offer(session, config, task, now=now)
    if kind == LATE_SUMMARY:
        queued = queue_late_summary(session, config=config, task=task, now=now)
        return TimerOutcome.SUMMARIZED if queued else TimerOutcome.ALREADY_DONE
    action, deadline, *rest = kind.split("-")
    if action == "remind":
        return remind(session, config, task, deadline, int(rest[0]), at_iso, now=now)
    return escalate(session, config, task, deadline, at_iso, now=now)


def remind(session: Session, config: RulesConfig, task: Task, deadline: str, percent: int,
           at_iso: str, *, now: datetime) -> TimerOutcome:
    """Reminds the assignee (a waiting task: its team channel, else its supervisor) once per
    task/deadline/percent/instant (audited as a reminder)."""
    details = {"kind": deadline, "percent": percent, "at": at_iso}
    if _audited(session, task, Audit.REMINDER, details):
        return TimerOutcome.ALREADY_DONE
    due = getattr(task, f"{deadline}_due")
    card = {"deadline": deadline, "percent": percent, "due": due.isoformat()}
    key = f"reminder-{task.id}-{deadline}-{percent}-{at_iso}"
    if task.assignee_id is None:
        notify_team(session, config=config, kind="reminder", task=task, dedupe_key=key,
                    details=card)
    else:
        queue_notification(session, config=config, kind="reminder", task=task,
                           agent_id=task.assignee_id, dedupe_key=key, details=card)
    record_event(
        session,
        task=task,
        actor=SYSTEM.label,
        action=Audit.REMINDER,
        details={**details, "agent": task.assignee_id},
        at=now,
    )
    return TimerOutcome.REMINDED


def escalate(session: Session, config: RulesConfig, task: Task, deadline: str, due_iso: str, *,
             now: datetime) -> TimerOutcome:
    """Runs the breach ladder of rules.yaml once per task/deadline/due instant."""
    if _audited(session, task, Audit.ESCALATED, {"deadline": deadline, "due": due_iso}):
        return TimerOutcome.ALREADY_DONE
    for step in config.escalation.on_breach:
        result = _BREACH_STEPS[str(step)](session, config, task, deadline, due_iso, now=now)
        details = {"step": str(step), "deadline": deadline, "due": due_iso, **result}
        record_event(
            session, task=task, actor=SYSTEM.label, action=Audit.ESCALATED, details=details, at=now
        )
    return TimerOutcome.ESCALATED


def _notify_supervisor(session, config, task: Task, deadline, due_iso, *, now) -> dict:
    supervisor = config.supervisor_of(task.team)
    if task.assignee_id is None:  # nobody holds it: the team may claim it too
        _notify_team_of_breach(session, config, task, deadline, due_iso)
    if supervisor is None:
        return {"supervisor": None}
    queue_notification(
        session,
        config=config,
        kind="breach",
        task=task,
        agent_id=supervisor,
        dedupe_key=f"breach-{task.id}-{deadline}-{due_iso}",
        details={
            "deadline": deadline,
            "due": due_iso,
            "step": "notify_supervisor",
            "agent": task.assignee_id,
        },
    )
    return {"supervisor": supervisor}


def _notify_team_of_breach(session, config, task: Task, deadline, due_iso) -> None:
    if team_recipients(config, task.team):
        queue_notification(session, config=config, kind="breach", task=task, agent_id=None,
                           dedupe_key=f"breach-team-{task.id}-{deadline}-{due_iso}",
                           details={"deadline": deadline, "due": due_iso,
                                    "step": "notify_supervisor"})


def _reassign(session, config, task: Task, deadline, due_iso, *, now) -> dict:
    previous = task.assignee_id
    agent = offer_to_next(session, config, task, exclude={previous}, now=now)
    return {"agent": agent, "previous_agent": previous}


def _raise_priority(session, config, task: Task, deadline, due_iso, *, now) -> dict:
    previous = task.priority
    try:
        raised = Priority(previous).raised().value
    except ValueError:
        raised = previous
    if raised != previous:
        task.priority = raised
        task.updated_at = now
        task.timer_generation += 1  # new timers for the new priority
    return {"from": previous, "to": raised}


_BREACH_STEPS = {
    "notify_supervisor": _notify_supervisor,
    "reassign": _reassign,
    "raise_priority": _raise_priority,
}


def expire_offer(session: Session, config: RulesConfig, task: Task, *,
                 now: datetime) -> TimerOutcome:
    """Not accepted within unaccepted_after: audit it and offer the task to the next agent."""
    agent = task.assignee_id
    after = int(config.escalation.unaccepted_after.total_seconds())
    record_event(
        session,
        task=task,
        actor=SYSTEM.label,
        action=Audit.OFFER_EXPIRED,
        details={"agent": agent, "after_seconds": after},
        at=now,
    )
    tried = {e.details.get("agent") for e in _events(session, task, Audit.OFFER_EXPIRED)}
    offer_to_next(session, config, task, exclude={agent, *tried}, now=now)
    return TimerOutcome.REOFFERED


def offer_to_next(session: Session, config: RulesConfig, task: Task, *, exclude: set[str | None],
                  now: datetime) -> str | None:
    """Routes `task` again without `exclude` (and whoever declined it); tells the previous
    assignee when it moved away, and routes the tasks waiting for their teams (they have room
    again). Returns the new agent or None (the task stays as it is)."""
    previous = task.assignee_id
    skip = {a for a in (*exclude, *task.declined_by) if a}
    result = assign_task(session, config=config, task=task, now=now, exclude=skip)
    if result.agent_id and previous and result.agent_id != previous:
        queue_notification(
            session,
            config=config,
            kind="reassigned_away",
            task=task,
            agent_id=previous,
            dedupe_key=f"away-{task.id}-{previous}-{task.timer_generation}",
            details={"agent": result.agent_id},
        )
        freed = config.agent(previous)
        route_waiting(session, config=config, teams=freed.teams if freed else (), now=now)
    return result.agent_id


def _events(session: Session, task: Task, action: str) -> list[TaskEvent]:
    return list_events(session, task_id=task.id, action=action)


def _audited(session: Session, task: Task, action: str, match: dict) -> bool:
    return any(
        all(event.details.get(key) == value for key, value in match.items())
        for event in _events(session, task, action)
    )

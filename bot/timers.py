"""SLA timers on RQ: reminders, the breach ladder and unaccepted offers.

Drains (`bot.dispatch`) call `schedule_timers` for the tasks whose `timer_generation` moved
on (every `transition_task` bumps it). Each timer is an RQ scheduled job (`Jobs.schedule_many`,
a batch of tasks at once) under a deterministic id `timer-<task>-<kind>-<generation>`; when
it fires it re-reads the task and does nothing unless the task is still in that generation
and the timer still applies. Notifications carry a dedupe key per task/kind/instant, so
re-runs are harmless.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from bot.jobs import make_job_id
from bot.services import Services
from rules import Priority, RulesConfig, SlaPolicy, add_business_time, business_time_between
from store.events import Audit, record_event
from store.lifecycle import SYSTEM
from store.models import OPEN_STATUSES, Task, TaskEvent, TaskStatus
from store.types import utcnow

FIRE_TIMER = "bot.timers.fire_timer"
UNACCEPTED = "unaccepted"
DEADLINES = ("first_response", "resolution")
_REGISTRY = "opsbot:timers:{}"


@dataclass(frozen=True)
class Timer:
    """One planned timer: `kind` is unaccepted, remind-<deadline>-<percent> or breach-<deadline>."""

    kind: str
    at: datetime


def timer_job_id(task_id: int, kind: str, generation: int) -> str:
    return make_job_id("timer", task_id, kind, generation)


def policy_of(config: RulesConfig, task: Task) -> SlaPolicy | None:
    """The task's SLA policy (its `sla_policy`, else its priority's), None when unknown."""
    for key in (task.sla_policy, task.priority):
        if key:
            try:
                return config.policy(key)
            except KeyError:
                continue
    return None


def plan_timers(config: RulesConfig, task: Task, *, now: datetime) -> list[Timer]:
    """The timers that apply to `task` in its current state (none while it waits on the customer).

    A reminder is dropped once the next milestone of its deadline has passed too, so a late
    reschedule sends at most the latest reminder; breaches are always kept (they run once).
    """
    if task.status not in OPEN_STATUSES or task.status == TaskStatus.WAITING_CUSTOMER:
        return []
    timers = []
    if task.status == TaskStatus.ASSIGNED and task.assigned_at is not None:
        timers.append(Timer(UNACCEPTED, task.assigned_at + config.escalation.unaccepted_after))
    for deadline in DEADLINES:
        if deadline == "first_response" and task.first_response_at is not None:
            continue
        due = getattr(task, f"{deadline}_due")
        if due is not None:
            timers.extend(_deadline_timers(config, task, deadline, due, now=now))
    return timers


def _deadline_timers(config, task: Task, deadline: str, due: datetime, *, now) -> list[Timer]:
    milestones = []
    if task.assignee_id:
        business = bool(policy_of(config, task) and policy_of(config, task).business_hours)
        for percent in config.escalation.remind_at:
            at = percent_instant(config, task.created_at, due, percent, business=business)
            milestones.append(Timer(f"remind-{deadline}-{percent}", at))
    milestones.append(Timer(f"breach-{deadline}", due))
    kept = [t for t, later in zip(milestones, milestones[1:], strict=False) if later.at > now]
    return [*kept, milestones[-1]]


def percent_instant(
    config: RulesConfig, start: datetime, due: datetime, percent: int, *, business: bool
) -> datetime:
    """The instant `percent` % of the way from `start` to `due` (in business time if asked)."""
    if not business:
        return start + (due - start) * percent / 100
    total = business_time_between(config, start, due)
    return add_business_time(config, start, total * percent / 100)


def schedule_timers(
    services: Services, tasks: list[Task], *, now: datetime
) -> dict[int, list[str]]:
    """Schedules the timers of each task's current generation (an id already alive in Redis
    is kept as is) and cancels the task's registered timers of that generation or an earlier
    one that the plan no longer has, in three Redis round trips for the batch: the registered
    ids (SMEMBERS), the jobs' statuses, then one pipeline that schedules, cancels and updates
    each task's registry. A later generation's timers are never touched, so two drains
    scheduling one task's generations in either order leave the later one in place (the
    earlier one's timers fire and do nothing). Returns each task's job ids now scheduled."""
    config = services.rules.current
    plans = {task.id: _planned(task, plan_timers(config, task, now=now)) for task in tasks}
    generations = {task.id: task.timer_generation for task in tasks}
    cancel = _replaced_timers(services, plans, generations)
    with services.redis.pipeline() as pipe:
        calls = [call for plan in plans.values() for call in plan.values()]
        _schedule(services, calls, [i for ids in cancel.values() for i in ids], pipe)
        for task_id, plan in plans.items():
            if cancel[task_id]:
                pipe.srem(_REGISTRY.format(task_id), *cancel[task_id])
            if plan:
                pipe.sadd(_REGISTRY.format(task_id), *plan)
        pipe.execute()
    return {task_id: list(plan) for task_id, plan in plans.items()}


def _replaced_timers(services: Services, plans: dict[int, dict],
                     generations: dict[int, int]) -> dict[int, list[str]]:
    """Each task's registered job ids, of its generation or an earlier one, that its plan no
    longer has."""
    with services.redis.pipeline(transaction=False) as pipe:
        for task_id in plans:
            pipe.smembers(_REGISTRY.format(task_id))
        registered = pipe.execute()
    return {
        task_id: [job_id for job_id in sorted(member.decode() for member in members)
                  if job_id not in plan and _generation(job_id) <= generations[task_id]]
        for (task_id, plan), members in zip(plans.items(), registered, strict=True)
    }


def _generation(job_id: str) -> int:
    """The generation in a `timer_job_id`."""
    return int(job_id.rsplit("-", 1)[1])


def restore_missing_timers(services: Services, tasks: list[Task], *, now: datetime) -> list[str]:
    """Re-enqueues the current generation's timers whose job is gone from Redis (a flush).

    One pipelined EXISTS per planned timer, then one pipeline that schedules the missing ones
    (a job that came back meanwhile is kept) and adds them to their task's registry.
    """
    from rq.job import Job

    config = services.rules.current
    plans = {task.id: _planned(task, plan_timers(config, task, now=now)) for task in tasks}
    planned = [(task_id, call) for task_id, plan in plans.items() for call in plan.values()]
    with services.redis.pipeline(transaction=False) as pipe:
        for _task_id, (job_id, _args, _at) in planned:
            pipe.exists(Job.key_for(job_id))
        present = pipe.execute()
    missing = [entry for entry, found in zip(planned, present, strict=True) if not found]
    with services.redis.pipeline() as pipe:
        _schedule(services, [call for _task_id, call in missing], [], pipe)
        for task_id, (job_id, _args, _at) in missing:
            pipe.sadd(_REGISTRY.format(task_id), job_id)
        pipe.execute()
    return [job_id for _task_id, (job_id, _args, _at) in missing]


def _planned(task: Task, timers: list[Timer]) -> dict[str, tuple[str, tuple, datetime]]:
    """Each timer's job id -> the (job_id, args, at) call that schedules it."""
    calls = {}
    for timer in timers:
        job_id = timer_job_id(task.id, timer.kind, task.timer_generation)
        args = (task.id, timer.kind, task.timer_generation, timer.at.isoformat())
        calls[job_id] = (job_id, args, timer.at)
    return calls


def _schedule(services: Services, calls: list, cancel: list[str], pipe) -> None:
    services.jobs.schedule_many(FIRE_TIMER, calls, cancel=cancel, pipeline=pipe)
    if calls:
        # RQ truncates the schedule score to whole seconds (a timer could fire up to 1 s
        # early); keep the exact instant: our scheduler (bot.worker) compares it with the
        # exact time. XX: a kept job that already left the schedule is not put back.
        registry = services.jobs.queue.scheduled_job_registry.key
        pipe.zadd(registry, {job_id: at.timestamp() for job_id, _args, at in calls}, xx=True)


def push_due_times(
    task: Task, *, config: RulesConfig, since: datetime, until: datetime
) -> timedelta:
    """Pushes the task's due times forward by the pause from `since` to `until` (business
    time for business-hours policies); returns the pause."""
    policy = policy_of(config, task)
    business = bool(policy and policy.business_hours)
    if business:
        paused = business_time_between(config, since, until)
    else:
        paused = max(until - since, timedelta(0))
    for field in ("first_response_due", "resolution_due"):
        due = getattr(task, field)
        if due is not None:
            # Written by settle_pauses with a plain UPDATE: no version bump, so an agent's
            # command on the same task at the same moment is not refused as a conflict.
            pushed = add_business_time(config, due, paused, business_hours=business)
            set_committed_value(task, field, pushed)
    return paused


_WAIT_EVENTS = or_(
    TaskEvent.to_status == TaskStatus.WAITING_CUSTOMER,
    TaskEvent.from_status == TaskStatus.WAITING_CUSTOMER,
    TaskEvent.action == Audit.SLA_RESUMED,
)


def settle_pauses(session: Session, config: RulesConfig, tasks: list[Task]) -> None:
    """The SLA clock stops while the task waits on the customer. Called by drains
    before they schedule the tasks' timers: for every wait that has ended (a transition out of
    waiting_customer) and is not settled yet, push the due times by the pause and write a
    `sla_resumed` audit event (details: wait_event, paused_seconds), so it is done once,
    whichever path (customer message, agent command, close) ended the wait. One query for
    all `tasks`: only their waits and settlements."""
    events: dict[int, list[TaskEvent]] = {}
    query = (select(TaskEvent)
             .where(TaskEvent.task_id.in_([task.id for task in tasks]), _WAIT_EVENTS)
             .order_by(TaskEvent.id))
    for event in session.scalars(query) if tasks else ():
        events.setdefault(event.task_id, []).append(event)
    for task in tasks:
        if task.id in events:
            _settle(session, config, task, events[task.id])


def _settle(session: Session, config: RulesConfig, task: Task, events: list[TaskEvent]) -> None:
    settled = {e.details.get("wait_event") for e in events if e.action == Audit.SLA_RESUMED}
    pushed, waiting = False, None
    for event in events:
        if event.to_status == TaskStatus.WAITING_CUSTOMER:
            waiting = event
        elif waiting is not None and event.from_status == TaskStatus.WAITING_CUSTOMER:
            if waiting.id not in settled:
                paused = push_due_times(task, config=config, since=waiting.at, until=event.at)
                record_event(
                    session,
                    task=task,
                    actor=SYSTEM.label,
                    action=Audit.SLA_RESUMED,
                    at=event.at,
                    details={"wait_event": waiting.id, "paused_seconds": paused.total_seconds()},
                )
                pushed = True
            waiting = None
    if pushed:
        session.execute(
            update(Task)
            .where(Task.id == task.id)
            .values(first_response_due=task.first_response_due, resolution_due=task.resolution_due)
            .execution_options(synchronize_session=False)
        )


def fire_timer(task_id: int, kind: str, generation: int, at_iso: str) -> str:
    """The RQ entry point of every timer; returns what it did (shown in the job result)."""
    from bot.dispatch import request_drain
    from bot.runtime import current_services

    services = current_services()
    config = services.rules.current
    with services.db.transaction() as session:
        task = session.get(Task, task_id)
        now = utcnow()
        outcome = _moved_on(config, task, kind, generation, at_iso, now=now)
        if outcome is None:
            outcome = handle_timer(session, config, task, kind, at_iso, now=now)
    request_drain(services)
    return outcome


def _moved_on(config, task: Task | None, kind, generation, at_iso, *, now) -> str | None:
    if task is None:
        return "task gone"
    if task.timer_generation != generation:
        return f"task moved on (generation {task.timer_generation})"
    planned = plan_timers(config, task, now=now)
    if not any(t.kind == kind and t.at.isoformat() == at_iso for t in planned):
        return "no longer applies"
    return None


def handle_timer(session: Session, config, task: Task, kind: str, at_iso: str, *, now) -> str:
    """Acts on a timer that still applies: remind, escalate a breach, or re-offer the task."""
    if kind == UNACCEPTED:
        return expire_offer(session, config, task, now=now)
    action, deadline, *rest = kind.split("-")
    if action == "remind":
        return remind(session, config, task, deadline, int(rest[0]), at_iso, now=now)
    return escalate(session, config, task, deadline, at_iso, now=now)


def remind(session, config, task: Task, deadline: str, percent: int, at_iso: str, *, now) -> str:
    """Reminds the assignee once per task/deadline/percent/instant (audited as a reminder)."""
    from notifiers.dispatch import queue_notification

    details = {"kind": deadline, "percent": percent, "at": at_iso}
    if _audited(session, task, Audit.REMINDER, details):
        return "already reminded"
    due = getattr(task, f"{deadline}_due")
    queue_notification(
        session,
        config=config,
        kind="reminder",
        task=task,
        agent_id=task.assignee_id,
        dedupe_key=f"reminder-{task.id}-{deadline}-{percent}-{at_iso}",
        details={"deadline": deadline, "percent": percent, "due": due.isoformat()},
    )
    record_event(
        session,
        task=task,
        actor=SYSTEM.label,
        action=Audit.REMINDER,
        details={**details, "agent": task.assignee_id},
        at=now,
    )
    return f"reminded {task.assignee_id} at {percent}% of {deadline}"


def escalate(session, config, task: Task, deadline: str, due_iso: str, *, now) -> str:
    """Runs the breach ladder of rules.yaml once per task/deadline/due instant."""
    if _audited(session, task, Audit.ESCALATED, {"deadline": deadline, "due": due_iso}):
        return "already escalated"
    done = []
    for step in config.escalation.on_breach:
        result = _BREACH_STEPS[str(step)](session, config, task, deadline, due_iso, now=now)
        details = {"step": str(step), "deadline": deadline, "due": due_iso, **result}
        record_event(
            session, task=task, actor=SYSTEM.label, action=Audit.ESCALATED, details=details, at=now
        )
        done.append(str(step))
    return f"{deadline} breached: " + (", ".join(done) or "no escalation steps")


def _notify_supervisor(session, config, task: Task, deadline, due_iso, *, now) -> dict:
    from notifiers.dispatch import queue_notification

    supervisor = config.supervisor_of(task.team)
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


def expire_offer(session, config, task: Task, *, now) -> str:
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
    chosen = offer_to_next(session, config, task, exclude={agent, *tried}, now=now)
    return f"offer to {agent} expired; now with {chosen or 'nobody else available'}"


def offer_to_next(session, config, task: Task, *, exclude, now) -> str | None:
    """Routes `task` again without `exclude` (and whoever declined it); tells the previous
    assignee when it moved away. Returns the new agent or None (the task stays as it is)."""
    from bot.assignment import assign_task
    from notifiers.dispatch import queue_notification

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
    return result.agent_id


def _events(session: Session, task: Task, action: str) -> list:
    query = select(TaskEvent).where(TaskEvent.task_id == task.id, TaskEvent.action == action)
    return list(session.scalars(query))


def _audited(session: Session, task: Task, action: str, match: dict) -> bool:
    return any(
        all(event.details.get(key) == value for key, value in match.items())
        for event in _events(session, task, action)
    )

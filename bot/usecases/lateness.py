"""Tasks born late: a customer message that reaches us after its SLA deadline (Meta redelivers
for days after an outage) makes a task whose deadline has already passed.

Such a task is marked once (`arrived_late`, with the reason), routed as usual, and
`rules.plan_timers` plans no reminder or breach for a deadline missed before the task existed.
Its team's supervisor (the admins for tasks without a team) gets ONE summary card for the
backlog: the first late task of a team opens a window of LATE_SUMMARY, the team's late tasks
of that window share its instant (`Task.late_summary_at`), and the first of their
`late_summary` timers to fire queues the card listing them all (once, by its dedupe key).
Called inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from bot.core import tunables
from notifiers.notifications import NotificationKind
from notifiers.queueing import queue_notification
from rules import RulesConfig
from rules.sla import missed_at_creation
from store.arrivals import find_late_summary, list_late_arrivals
from store.events import Audit, record_event
from store.lifecycle import SYSTEM
from store.models import Task


@dataclass(frozen=True)
class LateArrival:
    """A new task's message that came after some of its deadlines: when it was sent and
    received, each missed deadline's due instant, and when the team's summary goes out."""

    sent_at: datetime
    received_at: datetime
    missed: dict[str, datetime]
    summary_at: datetime

    @property
    def reason(self) -> str:
        missed = ", ".join(f"{deadline.replace('_', ' ')} due {_minute(due)}"
                           for deadline, due in self.missed.items())
        return (f"arrived late: sent {_minute(self.sent_at)}, received "
                f"{_minute(self.received_at)}; {missed} had already passed")


def check_arrival(session: Session, *, team: str | None, sent_at: datetime,
                  first_response_due: datetime, resolution_due: datetime,
                  now: datetime) -> LateArrival | None:
    """The lateness of a task created `now` from a message sent at `sent_at` with these due
    times (None when no deadline has passed): it joins its team's pending summary, if any,
    else opens one LATE_SUMMARY from now."""
    missed = missed_at_creation(now, first_response_due=first_response_due,
                                resolution_due=resolution_due)
    if not missed:
        return None
    summary_at = (find_late_summary(session, team=team, after=now)
                  or now + tunables.LATE_SUMMARY)
    return LateArrival(sent_at, now, missed, summary_at)


def mark_arrived_late(session: Session, *, task: Task, late: LateArrival) -> None:
    """Writes the task's `arrived_late` audit event, with the reason."""
    details = {"reason": late.reason, "sent_at": late.sent_at.isoformat(),
               "received_at": late.received_at.isoformat(),
               "missed": {deadline: due.isoformat() for deadline, due in late.missed.items()},
               "summary_at": late.summary_at.isoformat()}
    record_event(session, task=task, actor=SYSTEM.label, action=Audit.ARRIVED_LATE,
                 details=details, at=late.received_at)


def queue_late_summary(session: Session, *, config: RulesConfig, task: Task,
                       now: datetime) -> bool:
    """Queues, once per recipient, the summary card of the late tasks that share `task`'s
    team and summary instant: to the team's supervisor, or to the admins when there is none
    (tasks without a team). Returns whether a card was queued now (False: queued before, or
    nobody to tell)."""
    summary_at = task.late_summary_at
    arrivals = list_late_arrivals(session, team=task.team, summary_at=summary_at)
    sent = [at for _ref, at in arrivals if at is not None]
    details = {"team": task.team, "refs": [ref for ref, _at in arrivals],
               "oldest_seconds": (now - min(sent)).total_seconds() if sent else None}
    queued = [queue_notification(
        session, config=config, kind=NotificationKind.LATE_SUMMARY, task=None,
        agent_id=agent_id, details=details,
        dedupe_key=f"late-{task.team or '-'}-{agent_id}-{int(summary_at.timestamp())}")
        for agent_id in _recipients(config, task.team)]
    return any(row is not None for row in queued)


def _recipients(config: RulesConfig, team: str | None) -> list[str]:
    supervisor = config.supervisor_of(team)
    if supervisor is not None:
        return [supervisor]
    return [agent.id for agent in config.agents if agent.admin]


def _minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

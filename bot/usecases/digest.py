"""Shift starts and the daily digest: each agent's open tasks, sent when their day starts.

The worker schedules each agent's next shift start (`bot.worker.timers.schedule_digests`) at
`next_shift_start`, every opening of her hours (a split day has two); when it fires,
`start_day` routes the tasks waiting for the agent's teams (she is now available) and
`queue_digest` queues the card once per agent and day.
"""

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session

from bot.usecases.assignment import route_waiting
from notifiers.queueing import queue_notification
from rules import RulesConfig
from rules.calendar import intervals
from store.models import OPEN_STATUSES
from store.tasks import list_tasks


class DigestOutcome(StrEnum):
    QUEUED = "queued"
    NOT_QUEUED = "already sent or no channel"


def next_shift_start(config: RulesConfig, agent_id: str, *, now: datetime) -> datetime | None:
    """The next opening of the agent's working hours after `now` (her own hours, else the
    business hours); None when there is none within a year."""
    agent = config.agent(agent_id)
    week = agent.week if agent is not None and agent.week is not None else None
    week = week or config.business_hours.week
    until = now + timedelta(days=370)
    for opens, _closes in intervals(week, config.business_hours.holidays, config.tz, now):
        if opens > now:
            return opens
        if opens > until:
            break
    return None


def start_day(session: Session, *, config: RulesConfig, agent_id: str, day: str,
              now: datetime) -> DigestOutcome:
    """A shift of the agent starts: routes the tasks waiting for her teams, then queues her
    digest of `day` (which lists what she was just given) unless her day began earlier."""
    agent = config.agent(agent_id)
    route_waiting(session, config=config, teams=agent.teams if agent else (), now=now)
    session.flush()
    return queue_digest(session, config=config, agent_id=agent_id, day=day)


def queue_digest(session: Session, *, config: RulesConfig, agent_id: str,
                 day: str) -> DigestOutcome:
    """Queues the digest of `agent_id` for `day` (once per agent and day)."""
    tasks = list_tasks(session, statuses=list(OPEN_STATUSES), assignee_id=agent_id)
    rows = [{"ref": t.ref, "status": str(t.status), "title": t.title} for t in reversed(tasks)]
    row = queue_notification(session, config=config, kind="digest", task=None,
                             agent_id=agent_id, dedupe_key=f"digest-{agent_id}-{day}",
                             details={"tasks": rows, "day": day})
    return DigestOutcome.QUEUED if row is not None else DigestOutcome.NOT_QUEUED

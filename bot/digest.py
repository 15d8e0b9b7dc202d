"""The daily digest: each agent's open tasks, sent when their working day starts.

The sweeper calls `schedule_digests` on every pass; each agent's next digest is one RQ job
`digest-<agent>-<local date>` scheduled at the first opening of their hours that day (the
business hours when they have none), so it is scheduled once however often this runs.
"""

from datetime import date, datetime

from bot.jobs import make_job_id
from bot.services import Services
from rules import RulesConfig
from rules.calendar import intervals
from store.models import OPEN_STATUSES
from store.tasks import list_tasks
from store.types import utcnow

DIGEST_JOB = "bot.digest.digest_job"


def next_day_start(config: RulesConfig, agent_id: str, *, now: datetime) -> datetime | None:
    """The first opening of the agent's working hours on the next working day after `now`."""
    agent = config.agent(agent_id)
    week = agent.week if agent is not None and agent.week is not None else None
    week = week or config.business_hours.week
    seen: set[date] = set()
    for opens, _closes in intervals(week, config.business_hours.holidays, config.tz, now):
        day = opens.astimezone(config.tz).date()
        if day in seen:
            continue
        seen.add(day)
        if opens > now:
            return opens
        if len(seen) > 370:
            break
    return None


def schedule_digests(services: Services, *, now: datetime | None = None) -> list[str]:
    """Makes sure every agent's next digest is scheduled; returns the job ids."""
    config = services.rules.current
    now = now or utcnow()
    ids = []
    for agent in config.agents:
        at = next_day_start(config, agent.id, now=now)
        if at is None:
            continue
        day = at.astimezone(config.tz).date().isoformat()
        job_id = make_job_id("digest", agent.id, day.replace("-", ""))
        if not services.jobs.exists(job_id):
            services.jobs.enqueue(DIGEST_JOB, agent.id, day, job_id=job_id, at=at)
        ids.append(job_id)
    return ids


def queue_digest(session, config: RulesConfig, agent_id: str, day: str):
    """Queues the digest of `agent_id` for `day` (once per agent and day)."""
    from notifiers.dispatch import queue_notification

    tasks = list_tasks(session, statuses=list(OPEN_STATUSES), assignee_id=agent_id)
    rows = [{"ref": t.ref, "status": str(t.status), "title": t.title} for t in reversed(tasks)]
    return queue_notification(
        session,
        config=config,
        kind="digest",
        task=None,
        agent_id=agent_id,
        dedupe_key=f"digest-{agent_id}-{day}",
        details={"tasks": rows, "day": day},
    )


def digest_job(agent_id: str, day: str) -> str:
    """RQ entry point: sends one agent's digest for `day`."""
    from bot.dispatch import request_drain
    from bot.runtime import current_services

    services = current_services()
    with services.db.transaction() as session:
        row = queue_digest(session, services.rules.current, agent_id, day)
    request_drain(services)
    return "queued" if row is not None else "already sent or no channel"

"""Shared pieces of the WORKERS tests: a rules file with SLAs of seconds, services built on
the test database and Redis, tasks created the way processing creates them, and a worker
run in-process in burst loops until a condition holds."""

import textwrap
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from redis import Redis

from bot.core.bootstrap import build_senders, build_whatsapp_sender
from bot.core.jobs import Jobs
from bot.core.services import Services
from bot.core.settings import Settings
from bot.usecases.assignment import assign_task
from bot.worker.entrypoints import install_services
from bot.worker.process import make_worker
from rules import RulesHolder, compute_deadlines
from store.db import Database
from store.events import list_events
from store.lifecycle import SYSTEM, Action, Actor, ActorKind
from store.models import Task
from store.tasks import create_task, transition_task
from store.types import utcnow

RULES = """\
version: 1
timezone: UTC
business_hours: {mon-sun: "00:00-23:59"}
sla:
  normal: {first_response: 4s, resolution: 8s, business_hours: false}
  short: {first_response: 2s, resolution: 5s, business_hours: false}
  long: {first_response: 1h, resolution: 2h, business_hours: false}
escalation: {remind_at: [50%, 75%], unaccepted_after: 3s, on_breach: [notify_supervisor, reassign]}
teams:
  ops: {supervisor: sam, strategy: round_robin}
agents:
  - {id: ana, name: Ana, teams: [ops], slack: U0ANA}
  - {id: bob, name: Bob, teams: [ops], slack: U0BOB}
  - {id: sam, name: Sam, slack: U0SAM}
"""


def write_rules(tmp_path: Path, text: str = RULES) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def make_services(database_url: str, redis_url: str, rules_path: Path) -> Services:
    """Services on the test database and Redis, installed for job entry points; channels
    from the environment."""
    redis = Redis.from_url(redis_url)
    settings = Settings(database_url=database_url, redis_url=redis_url, rules_path=rules_path)
    services = Services(
        settings=settings,
        db=Database(database_url),
        rules=RulesHolder(rules_path),
        redis=redis,
        jobs=Jobs(redis),
        senders=build_senders(settings),
        whatsapp=build_whatsapp_sender(settings),
    )
    install_services(services)
    return services


def new_task(
    services: Services, *, sla: str = "normal", assign_to: str | None = "ana", accept: bool = False,
    answered: bool = False,
) -> int:
    """A task with its deadlines, assigned (by routing, starting with `assign_to`), maybe
    accepted and maybe `answered` (the agent's first reply reached the customer: only the
    resolution timers are left); returns its id. The caller dispatches."""
    config = services.rules.current
    now = utcnow()
    deadlines = compute_deadlines(config, priority="normal", start=now, sla=sla)
    with services.db.transaction() as session:
        task = create_task(
            session,
            title=f"{sla} task",
            category="support",
            priority="normal",
            actor=SYSTEM,
            team="ops",
            sla_policy=sla,
            first_response_due=deadlines.first_response_due,
            resolution_due=deadlines.resolution_due,
            now=now,
        )
        if assign_to:
            others = [a.id for a in config.team_members("ops") if a.id != assign_to]
            assign_task(session, config=config, task=task, now=now, exclude=others)
        if accept:
            agent = Actor(ActorKind.AGENT, task.assignee_id)
            transition_task(session, task=task, action=Action.ACCEPT, actor=agent, now=now)
        if answered:
            task.first_response_at = now
        return task.id


def move(
    services: Services,
    task_id: int,
    action: Action,
    *,
    actor: Actor | None = None,
    before: Callable[[Task], None] | None = None,
) -> None:
    with services.db.transaction() as session:
        task = session.get(Task, task_id)
        if before is not None:
            before(task)
        agent = actor or Actor(ActorKind.AGENT, task.assignee_id)
        transition_task(session, task=task, action=action, actor=agent)


def events_of(services: Services, task_id: int, action: str | None = None) -> list:
    with services.db.transaction() as session:
        events = list_events(session, task_id=task_id)
    return [e for e in events if action is None or e.action == action]


def task_of(services: Services, task_id: int) -> Task:
    with services.db.transaction() as session:
        return session.get(Task, task_id)


def work_until(
    services: Services,
    done: Callable[[], bool],
    *,
    timeout: float,
    every: Callable[[float], None] | None = None,
) -> float:
    """Runs burst workers (with the scheduler) in a loop until `done()`; returns the seconds
    it took. `every(elapsed)` runs between loops (to act on tasks while timers run)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        make_worker(services).work(burst=True, with_scheduler=True, logging_level="WARNING")
        if done():
            return time.monotonic() - start
        if every is not None:
            every(time.monotonic() - start)
        time.sleep(0.1)
    raise AssertionError(f"not done within {timeout} s")


def seconds(delta: timedelta) -> float:
    return delta.total_seconds()

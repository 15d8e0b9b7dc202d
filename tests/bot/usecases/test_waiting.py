"""Tasks nobody can take wait for their team: posted once to the team (channel, else
supervisor) with a Claim button, routed when someone becomes available (shift start, capacity
freed), reminded and escalated to the team while nobody holds them."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.usecases.assignment import assign_task, route_waiting
from bot.usecases.digest import start_day
from bot.usecases.escalation import expire_offer, fire_timer, sla_clock
from notifiers.commands import run_command
from notifiers.grammar import CommandRequest
from rules import compute_deadlines, parse_rules, plan_timers
from store.agents import set_away
from store.events import Audit, list_events
from store.lifecycle import SYSTEM, Action, Actor, ActorKind
from store.models import OutboxMessage, Task, TaskStatus
from store.tasks import create_task, transition_task

# Tuesday 24 November 2026, 08:00 in Madrid (07:00 UTC): before ana's shift (09:00-17:00)
EARLY = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
SHIFT = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
RULES = """
version: 1
timezone: Europe/Madrid
business_hours: {mon-sun: "00:00-24:00"}
sla: {normal: {first_response: 4h, resolution: 24h, business_hours: false}}
escalation: {remind_at: [50%], unaccepted_after: 10m, on_breach: [notify_supervisor]}
teams:
  support: {supervisor: sam, slack_channel: C0SUPPORT}
  billing: {supervisor: sam}
agents:
  - {id: ana, name: Ana, teams: [support, billing], slack: U0ANA, capacity: 1,
     hours: {mon-fri: "09:00-17:00"}}
  - {id: bea, name: Bea, teams: [support, billing], slack: U0BEA, capacity: 1,
     hours: {mon-fri: "09:00-17:00"}}
  - {id: sam, name: Sam, slack: U0SAM}
"""


@pytest.fixture
def config():
    return parse_rules(RULES)


def new_task(session, config, *, team="support", now=EARLY) -> Task:
    deadlines = compute_deadlines(config, priority="normal", start=now)
    return create_task(session, title="Ayuda", category="support", priority="normal",
                       actor=SYSTEM, team=team, now=now,
                       first_response_due=deadlines.first_response_due,
                       resolution_due=deadlines.resolution_due)


def rows(session, kind: str) -> list[OutboxMessage]:
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)
                                .order_by(OutboxMessage.id)))


def test_a_waiting_task_is_posted_once_to_its_team_channel_with_a_claim_button(db, config):
    with db.transaction() as session:
        task = new_task(session, config)
        assert assign_task(session, config=config, task=task, now=EARLY).agent_id is None
        assert route_waiting(session, config=config, teams=["support"], now=EARLY)[0].agent_id \
            is None  # tried again, still nobody: nothing new said
        [card] = rows(session, "waiting")
        assert card.agent_id is None and card.payload["team_post"] is True
        assert card.payload["to"] == {"slack": "C0SUPPORT"}
        notification = card.payload["notification"]
        assert notification["title"] == f"Waiting for the team {task.ref}: Ayuda"
        assert notification["buttons"] == [["accept", "Claim", "primary"]]
        assert len(list_events(session, task_id=task.id, action=Audit.UNROUTED)) == 1
        assert task.status == TaskStatus.NEW


def test_without_a_team_channel_the_supervisor_gets_the_waiting_card(db, config):
    with db.transaction() as session:
        task = new_task(session, config, team="billing")
        assign_task(session, config=config, task=task, now=EARLY)
        [card] = rows(session, "waiting")
        assert (card.agent_id, card.payload["to"]) == ("sam", {"slack": "U0SAM"})


def test_a_task_declined_into_waiting_again_is_posted_again(db, config):
    with db.transaction() as session:
        task = new_task(session, config, now=SHIFT)
        assert assign_task(session, config=config, task=task, now=SHIFT).agent_id == "ana"
        set_away(session, agent_id="bea", away=True, now=SHIFT)
        transition_task(session, task=task, action=Action.DECLINE,
                        actor=SYSTEM, now=SHIFT)
        assign_task(session, config=config, task=task, now=SHIFT, exclude=task.declined_by)
        assert len(rows(session, "waiting")) == 1 and task.status == TaskStatus.NEW


def test_the_shift_start_routes_the_waiting_tasks_before_the_digest(db, config):
    with db.transaction() as session:
        task = new_task(session, config)
        assign_task(session, config=config, task=task, now=EARLY)
        set_away(session, agent_id="bea", away=True, now=EARLY)
        start_day(session, config=config, agent_id="ana", day="2026-11-24", now=SHIFT)
        assert (task.status, task.assignee_id) == (TaskStatus.ASSIGNED, "ana")
        [digest] = rows(session, "digest")
        assert digest.payload["notification"]["title"] == "Your open tasks (1)"


def command(db, config, user: str, text: str):
    request = CommandRequest("slack", user, text)
    return run_command(db, config, request, now=SHIFT, assign=assign_task)


def test_closing_a_task_frees_capacity_for_the_oldest_waiting_task(db, config):
    with db.transaction() as session:
        set_away(session, agent_id="bea", away=True, now=SHIFT)
        held = new_task(session, config, now=SHIFT)
        assign_task(session, config=config, task=held, now=SHIFT)
        transition_task(session, task=held, action=Action.ACCEPT,
                        actor=Actor(ActorKind.AGENT, "ana"), now=SHIFT)
        waiting = new_task(session, config, now=SHIFT)
        assert assign_task(session, config=config, task=waiting, now=SHIFT).agent_id is None
        held_id, waiting_id = held.id, waiting.id
    assert command(db, config, "U0ANA", f"close {held_id}").ok
    with db.transaction() as session:
        assert session.get(Task, waiting_id).assignee_id == "ana"
        assert session.get(Task, held_id).status == TaskStatus.CLOSED


def test_a_task_reassigned_away_frees_capacity_for_a_waiting_task(db, config):
    with db.transaction() as session:
        set_away(session, agent_id="bea", away=True, now=SHIFT)
        held = new_task(session, config, now=SHIFT)
        assign_task(session, config=config, task=held, now=SHIFT)
        waiting = new_task(session, config, now=SHIFT)
        assign_task(session, config=config, task=waiting, now=SHIFT)
        held_id, waiting_id = held.id, waiting.id
    assert command(db, config, "U0SAM", f"reassign {held_id} bea").ok
    with db.transaction() as session:
        assert session.get(Task, waiting_id).assignee_id == "ana"


def test_an_offer_moved_on_by_the_ladder_frees_capacity_too(db, config):
    with db.transaction() as session:
        held = new_task(session, config, now=SHIFT)
        assert assign_task(session, config=config, task=held, now=SHIFT).agent_id == "ana"
        set_away(session, agent_id="bea", away=True, now=SHIFT)
        waiting = new_task(session, config, team="billing", now=SHIFT)
        assert assign_task(session, config=config, task=waiting, now=SHIFT).agent_id is None
        set_away(session, agent_id="bea", away=False, now=SHIFT)  # without routing anything
        expire_offer(session, config, held, now=SHIFT)  # ana's offer goes to bea
        assert (held.assignee_id, waiting.assignee_id) == ("bea", "ana")


def due_timer(config, task: Task, prefix: str):
    return next(t for t in plan_timers(config, sla_clock(task), now=EARLY)
                if t.kind.startswith(prefix))


@pytest.mark.parametrize(("team", "to"), [("support", {"slack": "C0SUPPORT"}),
                                          ("billing", {"slack": "U0SAM"})])
def test_a_waiting_task_is_reminded_to_its_team_else_its_supervisor(db, config, team, to):
    with db.transaction() as session:
        task = new_task(session, config, team=team)
        assign_task(session, config=config, task=task, now=EARLY)
        timer = due_timer(config, task, "remind-first_response")
        outcome = fire_timer(session, config=config, task_id=task.id, kind=timer.kind,
                             generation=task.timer_generation, at_iso=timer.at.isoformat(),
                             now=timer.at)
        assert outcome == "reminded"
        [reminder] = rows(session, "reminder")
        assert reminder.payload["to"] == to


def test_a_breach_of_a_waiting_task_goes_to_the_team_channel_and_the_supervisor(db, config):
    with db.transaction() as session:
        task = new_task(session, config)
        assign_task(session, config=config, task=task, now=EARLY)
        timer = due_timer(config, task, "breach-first_response")
        fire_timer(session, config=config, task_id=task.id, kind=timer.kind,
                   generation=task.timer_generation, at_iso=timer.at.isoformat(), now=timer.at)
        breaches = rows(session, "breach")
        assert sorted(dict(row.payload["to"])["slack"] for row in breaches) == [
            "C0SUPPORT", "U0SAM"]

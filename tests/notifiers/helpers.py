"""A small rules file, fixed instants and task builders for the notifier tests."""

from __future__ import annotations

from datetime import UTC, datetime

from notifiers.queueing import queue_notification
from rules import RoutingResult, route
from rules.config import RulesConfig
from rules.loader import parse_rules
from store.agents import get_agent_states
from store.contacts import upsert_contact
from store.lifecycle import SYSTEM, Action
from store.models import Task
from store.tasks import create_task, transition_task

RULES = """\
version: 1
timezone: Europe/Madrid
default_language: es
business_hours: {mon-fri: "09:00-18:00"}
sla:
  normal: {first_response: 4h, resolution: 24h}
teams:
  logistics: {supervisor: marta, strategy: least_loaded, slack_channel: C0LOGI}
  sales: {supervisor: sofia, strategy: least_loaded}
agents:
  - {id: ana, name: Ana García, teams: [logistics], skills: [shipping], languages: [es, en],
     slack: U0ANA, telegram: 111, capacity: 5}
  - {id: pablo, name: Pablo Ruiz, teams: [logistics], skills: [shipping], languages: [es],
     slack: U0PABLO, capacity: 5}
  - {id: marta, name: Marta López, teams: [logistics], skills: [shipping], languages: [es],
     slack: U0MARTA, telegram: 333, preferred_channel: telegram, capacity: 5}
  - {id: tina, name: Tina Telegram, teams: [logistics], skills: [shipping], languages: [es],
     telegram: 444, capacity: 5}
  # Another team, its supervisor, and an admin of no team: for the permission tests.
  - {id: sara, name: Sara Sales, teams: [sales], skills: [shipping], languages: [es],
     slack: U0SARA, capacity: 5}
  - {id: sofia, name: Sofía Supervisora, teams: [sales], skills: [shipping], languages: [es],
     slack: U0SOFIA, capacity: 5}
  - {id: alba, name: Alba Admin, slack: U0ALBA, admin: true}
closing_reply:
  es: "Hola {contact.first_name}, cerramos la solicitud #{task.number}."
  en: "Hi {contact.first_name}, we closed request #{task.number}."
"""

# Tuesday 24 November 2026, 10:00 in Madrid (CET, UTC+1).
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def config(text: str = RULES) -> RulesConfig:
    return parse_rules(text)


def make_task(session, *, assignee: str | None = None, language: str = "es",
              team: str | None = "logistics") -> Task:
    """A task of `team` (logistics) for a customer, assigned to `assignee` when given."""
    contact, created = upsert_contact(session, wa_id="34600000001", user_id=None,
                                      name="Carmen Ruiz", now=NOW)
    if created:
        contact.language = language
        contact.last_inbound_at = NOW  # wrote just now: the reply window is open
    task = create_task(session, title="Cambio de envío", category="operations",
                       priority="normal", actor=SYSTEM, contact_id=contact.id,
                       team=team, skills=["shipping"], language=language, now=NOW)
    if assignee:
        transition_task(session, task=task, action=Action.ASSIGN, actor=SYSTEM,
                        assignee_id=assignee, now=NOW)
    return task


def simple_assign(session, *, config, task, now, exclude=()) -> RoutingResult:
    """A stand-in for bot/'s assign_task (notifier tests do not import bot/): route by the
    agents' stored state (away, load), assign, notify."""
    result = route(config, team=task.team, skills=task.skills, language=task.language,
                   agents=get_agent_states(session), now=now, exclude=exclude)
    if result.agent_id is None:
        return result
    transition_task(session, task=task, action=Action.ASSIGN, actor=SYSTEM,
                    assignee_id=result.agent_id, now=now)
    queue_notification(session, config=config, kind="assigned", task=task,
                       agent_id=result.agent_id,
                       dedupe_key=f"assigned-{task.id}-{task.timer_generation}")
    return result

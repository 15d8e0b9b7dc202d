"""The agents: who is available, who works now, how loaded each one is; supervisors and admins
mark an agent away or back through the same command layer as the chat verbs `away` and
`back`, and the audit trail names who did it."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from bot.console.auth import Refused, Viewer, checked, services_of, signed_in
from bot.console.pages import redirect, render
from bot.core.services import Services
from bot.usecases.assignment import assign_task
from bot.worker.drains import request_drain
from notifiers.commands import run_verb
from notifiers.grammar import Command, CommandResult, Context
from rules import Agent, AgentState, RulesConfig
from rules.hours import describe_day
from rules.routing import is_working
from store.agents import count_open_tasks, get_agent_states
from store.errors import NotFound
from store.events import Audit, record_event
from store.types import utcnow

router = APIRouter()
Signed = Annotated[Viewer, Depends(signed_in)]
AWAY, BACK = "agent_away", "agent_back"  # audit actions: who marked an agent, and which one
WELCOME = "Welcome back. "  # how `back` greets the agent themself, not the one who clicked


@dataclass(frozen=True)
class AgentRow:
    """One agent as the page shows them."""

    agent: Agent
    channels: tuple[tuple[str, bool], ...]  # (slack|telegram, whether that channel is on)
    away: bool
    working: bool
    hours_today: str  # "09:00-18:00", "off", or "always" (no hours in rules.yaml)
    open_tasks: int
    manageable: bool  # the viewer may mark them away or back

    @property
    def load_percent(self) -> int:
        return round(100 * self.open_tasks / self.agent.capacity)


@router.get("/agents", name="agents_page")
def agents_page(request: Request, viewer: Signed, said: str = "", failed: str = "") -> Response:
    services = services_of(request)
    config = services.rules.current
    with services.db.transaction(readonly=True) as session:
        states, loads = get_agent_states(session), count_open_tasks(session)
    now = utcnow()
    rows = [_row(services, config, viewer, agent, states, loads, now)
            for agent in sorted(config.agents, key=lambda agent: agent.name)
            if _visible(viewer, agent)]
    return render(request, "agents.html", viewer=viewer, rows=rows, said=said, failed=failed,
                  any_manageable=any(row.manageable for row in rows))


def _visible(viewer: Viewer, agent: Agent) -> bool:
    """Admins see everyone; the others the agents of the teams they belong to or supervise."""
    return viewer.actor.admin or bool(set(agent.teams) & viewer.actor.all_teams)


def _manageable(viewer: Viewer, agent: Agent) -> bool:
    """Admins, and the supervisors of one of the agent's teams (never an agent's role)."""
    supervised = bool(set(agent.teams) & viewer.actor.supervises)
    return viewer.oversees and (viewer.actor.admin or supervised)


def _row(services: Services, config: RulesConfig, viewer: Viewer, agent: Agent,
         states: dict[str, AgentState], loads: dict[str, int], now: datetime) -> AgentRow:
    state = states.get(agent.id) or AgentState(agent.id)
    settings = services.settings
    channels = tuple((name, on) for name, address, on in (
        ("slack", agent.slack, settings.slack_enabled),
        ("telegram", agent.telegram, settings.telegram_enabled)) if address)
    return AgentRow(agent, channels, state.away, is_working(config, agent, now),
                    _hours_today(config, agent, now), loads.get(agent.id, 0),
                    _manageable(viewer, agent))


def _hours_today(config: RulesConfig, agent: Agent, now: datetime) -> str:
    if agent.week is None:
        return "always"
    return describe_day(agent.week[now.astimezone(config.tz).weekday()])


@router.post("/agents/{agent_id}/away", name="agent_away")
async def agent_away(request: Request, viewer: Signed, agent_id: str) -> Response:
    await checked(request, viewer)
    result = _set_availability(request, viewer, agent_id, away=True)
    return _back_to_page(request, result)


@router.post("/agents/{agent_id}/back", name="agent_back")
async def agent_back(request: Request, viewer: Signed, agent_id: str) -> Response:
    await checked(request, viewer)
    result = _set_availability(request, viewer, agent_id, away=False)
    return _back_to_page(request, result)


def _set_availability(request: Request, viewer: Viewer, agent_id: str, *,
                      away: bool) -> CommandResult:
    """Runs `away` or `back` for the agent `agent_id` as the viewer, and audits who did it
    (the verbs themselves record nothing); raises NotFound or Refused (403, audited)."""
    services = services_of(request)
    config = services.rules.current
    agent = _target(config, agent_id)
    verb = "away" if away else "back"
    if not _manageable(viewer, agent):
        _deny(services, viewer, verb, agent)
    with services.db.transaction() as session:
        context = Context(session, config, agent, viewer.actor, utcnow(), assign_task,
                          request_key=uuid.uuid4().hex)
        result = run_verb(context, Command(verb, ()))
        if result.ok:
            record_event(session, task=None, actor=viewer.actor.label,
                         action=AWAY if away else BACK, details={"agent": agent.id})
    if result.ok and not away:
        request_drain(services)  # the cards of the tasks routed to people go out
    return _told(agent, away, result)


def _target(config: RulesConfig, agent_id: str) -> Agent:
    agent = config.agent(agent_id)
    if agent is None:
        raise NotFound(f"There is no agent '{agent_id}' in rules.yaml.")
    return agent


def _deny(services: Services, viewer: Viewer, verb: str, agent: Agent) -> None:
    """Audits the refusal (as the command layer audits a refused verb), then refuses."""
    reason = "only admins and the supervisors of the agent's teams may do that"
    with services.db.transaction() as session:
        record_event(session, task=None, actor=viewer.actor.label, action=Audit.DENIED,
                     details={"verb": verb, "agent": agent.id, "reason": reason})
    raise Refused(403, f"You cannot mark {agent.name} {verb}: {reason}.")


def _told(agent: Agent, away: bool, result: CommandResult) -> CommandResult:
    """The verb's answer as the person who clicked reads it (the verb speaks to the agent)."""
    if not result.ok:
        return result
    if away:
        return CommandResult(f"{agent.name} is away: no new tasks are routed to them.")
    return CommandResult(f"{agent.name} is back. {result.text.removeprefix(WELCOME)}".strip())


def _back_to_page(request: Request, result: CommandResult) -> Response:
    key = "said" if result.ok else "failed"
    return redirect(request.url_for("agents_page").path + f"?{key}={quote(result.text)}")

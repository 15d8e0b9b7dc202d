"""Pick the agent for a task and explain the choice for every candidate."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from rules.calendar import is_open
from rules.config import Agent, RulesConfig
from rules.enums import Strategy
from rules.hours import DAY_NAMES, describe_day


@dataclass(frozen=True)
class AgentState:
    """What the store knows about an agent right now."""

    agent_id: str
    away: bool = False
    open_tasks: int = 0
    last_assigned_at: datetime | None = None


@dataclass(frozen=True)
class Candidate:
    agent_id: str
    chosen: bool
    reason: str


@dataclass(frozen=True)
class RoutingResult:
    agent_id: str | None
    team: str | None
    candidates: tuple[Candidate, ...]
    summary: str


def route(config: RulesConfig, *, team: str | None, skills: Sequence[str],
          language: str | None, agents: Mapping[str, AgentState], now: datetime,
          last_agent: str | None = None, exclude: Collection[str] = ()) -> RoutingResult:
    """Return the chosen agent (or None) and why each team member was chosen or skipped.
    Agents missing from `agents` count as available with no open tasks."""
    members = config.team_members(team)
    states = {a.id: agents.get(a.id) or AgentState(a.id) for a in members}
    skips = {a.id: _skip_reason(config, a, states[a.id], skills, language, now, exclude)
             for a in members}
    eligible = [a for a in members if skips[a.id] is None]
    strategy = config.teams[team].strategy if team in config.teams else Strategy.least_loaded
    chosen, why, short = _choose(strategy, eligible, states, last_agent, skips)
    candidates = tuple(
        Candidate(a.id, a is chosen, _candidate_reason(a, chosen, why, states[a.id], skips[a.id]))
        for a in members)
    where = f" in {team}" if team else ""
    if chosen is None:
        summary = f"nobody available{where}: waiting for the team"
    else:
        summary = f"assigned to {chosen.id}: {short}"
    return RoutingResult(chosen.id if chosen else None, team, candidates, summary)


def _candidate_reason(agent: Agent, chosen: Agent | None, why: str, state: AgentState,
                      skip: str | None) -> str:
    if skip is not None:
        return f"skipped: {skip}"
    if agent is chosen:
        return f"chosen: {why}"
    return f"eligible, not chosen ({_load(agent, state)})"


def _load(agent: Agent, state: AgentState) -> str:
    return f"{state.open_tasks} open of {agent.capacity}"


def _skip_reason(config: RulesConfig, agent: Agent, state: AgentState, skills: Sequence[str],
                 language: str | None, now: datetime, exclude: Collection[str]) -> str | None:
    if agent.id in exclude:
        return "excluded (already offered: declined or let the offer expire)"
    if state.away:
        return "away"
    if not is_working(config, agent, now):
        return f"outside working hours ({_hours_today(config, agent, now)} {config.timezone})"
    if state.open_tasks >= agent.capacity:
        return f"at capacity ({state.open_tasks}/{agent.capacity})"
    missing = [skill for skill in skills if skill not in agent.skills]
    if missing:
        return f"lacks skill {', '.join(missing)}"
    if language and agent.languages and language not in agent.languages:
        return f"does not speak {language}"
    return None


def is_working(config: RulesConfig, agent: Agent, now: datetime) -> bool:
    """Return True when `now` is inside the agent's weekly hours (always, without hours)."""
    # Agent hours are a weekly pattern; business holidays only pause SLA clocks.
    return agent.week is None or is_open(agent.week, frozenset(), config.tz, now)


def _hours_today(config: RulesConfig, agent: Agent, now: datetime) -> str:
    local = now.astimezone(config.tz)
    ranges = agent.week[local.weekday()] if agent.week else ()
    return describe_day(ranges) if ranges else f"off on {DAY_NAMES[local.weekday()]}"


def _choose(strategy: Strategy, eligible: list[Agent], states: Mapping[str, AgentState],
            last_agent: str | None, skips: Mapping[str, str | None],
            ) -> tuple[Agent | None, str, str]:
    """Return the agent, the full reason, and the short reason for the summary."""
    if not eligible:
        return None, "", ""
    if strategy is Strategy.round_robin:
        return (*_round_robin(eligible, states), "round robin")
    chosen, why = _least_loaded(eligible, states)
    if strategy is not Strategy.sticky:
        return chosen, why, "least loaded"
    sticky = next((a for a in eligible if a.id == last_agent), None)
    if sticky is not None:
        return sticky, "sticky (handled this customer before)", "sticky"
    if last_agent is None:
        fallback = "no previous agent"
    else:
        fallback = f"{last_agent} {skips.get(last_agent) or 'is not in this team'}"
    return chosen, f"{why}; sticky fallback: {fallback}", f"least loaded (sticky: {fallback})"


def _never_first(state: AgentState) -> tuple[bool, datetime | None]:
    # None sorts before any instant: an agent never assigned is the longest waiting.
    return (state.last_assigned_at is not None, state.last_assigned_at)


def _least_loaded(eligible: list[Agent], states: Mapping[str, AgentState]) -> tuple[Agent, str]:
    chosen = min(eligible, key=lambda a: (states[a.id].open_tasks, _never_first(states[a.id])))
    return chosen, f"least loaded ({_load(chosen, states[chosen.id])})"


def _round_robin(eligible: list[Agent], states: Mapping[str, AgentState]) -> tuple[Agent, str]:
    chosen = min(eligible, key=lambda a: _never_first(states[a.id]))
    last = states[chosen.id].last_assigned_at
    detail = "never assigned" if last is None else f"last assigned {last:%Y-%m-%d %H:%M} UTC"
    return chosen, f"round robin ({detail})"

"""What `opsbot rules check` and `opsbot rules test` say, for the CLI and the console alike:
the check of a rules file, and a dry run of one message (rules, task fields, deadlines,
timers, routing with every candidate's reason, the sample reply). Pure: the caller gives
`now` and the agents' states; nothing is stored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rules.config import RulesConfig
from rules.durations import format_duration
from rules.engine import Decision, evaluate
from rules.enums import MessageType
from rules.errors import RulesError
from rules.eta import describe_due
from rules.facts import ContactFacts, HistoryFacts, MessageFacts
from rules.loader import load_rules, parse_rules
from rules.routing import AgentState, RoutingResult, route
from rules.sla import Deadlines, SlaClock, Timer, compute_deadlines, plan_timers
from rules.templates import pick_language_text, render_template


@dataclass(frozen=True)
class CheckResult:
    """A rules file checked: `lines` is the OK line, or one `PATH:LINE:COL: message` per
    problem; `config` is the loaded rules when ok."""

    ok: bool
    lines: tuple[str, ...]
    config: RulesConfig | None = None


def check_rules_file(path: str | Path) -> CheckResult:
    """Checks the file at `path` (an unreadable file is a problem at 1:1); never raises."""
    try:
        return _ok(load_rules(path), path)
    except RulesError as exc:
        return CheckResult(False, tuple(str(issue) for issue in exc.issues))


def check_rules_text(text: str, path: str | Path) -> CheckResult:
    """Checks `text` as the content of the file `path`; never raises."""
    try:
        return _ok(parse_rules(text, str(path)), path)
    except RulesError as exc:
        return CheckResult(False, tuple(str(issue) for issue in exc.issues))


def _ok(config: RulesConfig, path: str | Path) -> CheckResult:
    line = (f"OK {path}: {len(config.rules)} rules, {len(config.teams)} teams, "
            f"{len(config.agents)} agents, timezone {config.timezone}")
    return CheckResult(True, (line,), config)


def parse_instant(text: str) -> datetime:
    """The UTC instant of an ISO 8601 text (UTC when it names no offset); raises ValueError
    with a sentence that shows the expected form."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not ISO 8601 (2026-03-06T17:30+01:00)") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def everyone_free(config: RulesConfig) -> dict[str, AgentState]:
    """Every agent available with no open tasks (where no database tells otherwise)."""
    return {agent.id: AgentState(agent.id) for agent in config.agents}


@dataclass(frozen=True)
class MessageTrial:
    """A message to dry-run: its text and type, the customer's CRM status and phone, the
    message's language when known (else the rules detect it)."""

    text: str
    type: MessageType = MessageType.text
    status: str = "lead"
    phone: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class Explanation:
    """What a message would become at `now`."""

    now: datetime
    decision: Decision
    deadlines: Deadlines
    routing: RoutingResult
    reply: str | None
    timers: tuple[Timer, ...]


def explain_message(config: RulesConfig, trial: MessageTrial, *, now: datetime,
                    agents: Mapping[str, AgentState]) -> Explanation:
    """The rules' decision, deadlines, timers, routing (by `agents`' states) and sample reply
    for `trial` at `now`."""
    message = MessageFacts(text=trial.text, type=trial.type, language=trial.language or None)
    decision = evaluate(config, message=message,
                        contact=ContactFacts(name=None, status=trial.status),
                        history=HistoryFacts(), now=now)
    deadlines = compute_deadlines(config, priority=decision.priority, start=now, sla=decision.sla)
    routing = route(config, team=decision.team, skills=decision.skills,
                    language=decision.language, agents=agents, now=now)
    reply = _sample_reply(config, decision, deadlines, trial.phone, now)
    timers = _planned_timers(config, decision, deadlines, routing, now)
    return Explanation(now, decision, deadlines, routing, reply, tuple(timers))


def _planned_timers(config: RulesConfig, decision: Decision, deadlines: Deadlines,
                    routing: RoutingResult, now: datetime) -> list[Timer]:
    """The timers the worker schedules for the new task, offered as `routing` says (the
    planner the worker uses: no reminders while nobody has the task)."""
    clock = SlaClock(created_at=now, priority=str(decision.priority), sla_policy=decision.sla,
                     offered_at=now if routing.agent_id else None, assignee=routing.agent_id,
                     first_response_due=deadlines.first_response_due,
                     resolution_due=deadlines.resolution_due)
    return plan_timers(config, clock, now=now)


def _sample_reply(config: RulesConfig, decision: Decision, deadlines: Deadlines,
                  phone: str | None, now: datetime) -> str | None:
    template = pick_language_text(decision.reply, decision.language, config.default_language)
    if template is None or decision.ignore:
        return None
    policy = config.policy(decision.sla)
    language = decision.language or config.default_language

    def eta(due: datetime) -> str:
        return describe_due(due, now=now, calendar=config.calendar, language=language,
                            business_hours=policy.business_hours)

    values = {"contact": {"name": phone or "Cliente", "phone": phone or ""},
              "task": {"number": "N"},
              "sla": {"first_response": policy.first_response, "resolution": policy.resolution,
                      "first_response_eta": eta(deadlines.first_response_due),
                      "resolution_eta": eta(deadlines.resolution_due)}}
    return render_template(template, values)


def explanation_dict(found: Explanation) -> dict[str, object]:
    """`found` as `opsbot rules test --json` prints it."""
    decision, deadlines, routing = found.decision, found.deadlines, found.routing
    return {
        "at": found.now.isoformat(),
        "matched": [{"name": m.name, "reasons": list(m.reasons)} for m in decision.matched],
        "ignore": decision.ignore, "category": decision.category, "title": decision.title,
        "priority": str(decision.priority), "sla": decision.sla, "team": decision.team,
        "skills": list(decision.skills), "tags": list(decision.tags), "stage": decision.stage,
        "language": decision.language, "reply": found.reply,
        "deadlines": {
            "first_response_due": deadlines.first_response_due.isoformat(),
            "resolution_due": deadlines.resolution_due.isoformat(),
            "reminders": [{"kind": str(r.kind), "percent": r.percent, "at": r.at.isoformat()}
                          for r in deadlines.reminders],
        },
        "routing": {
            "agent_id": routing.agent_id, "team": routing.team, "summary": routing.summary,
            "candidates": [{"agent_id": c.agent_id, "chosen": c.chosen, "reason": c.reason}
                           for c in routing.candidates],
        },
        "timers": [{"kind": t.kind, "at": t.at.isoformat()} for t in found.timers],
    }


def explanation_lines(config: RulesConfig, found: Explanation) -> list[str]:
    """`found` as `opsbot rules test` prints it, one line each, times in the business
    timezone."""
    def local(at: datetime) -> str:
        return at.astimezone(config.tz).strftime("%a %Y-%m-%d %H:%M %Z")

    decision, deadlines, routing = found.decision, found.deadlines, found.routing
    policy = config.policy(decision.sla)
    lines = [f"at        {local(found.now)}", "matched:"]
    lines += [f"  - {m.name}: {'; '.join(m.reasons) or 'always'}" for m in decision.matched]
    lines += ["  (no rule matched: built-in defaults)"] if not decision.matched else []
    lines += ["ignore    yes: threads into the open task, no new task"] if decision.ignore else []
    lines += [
        f"category  {decision.category}", f"title     {decision.title}",
        f"priority  {decision.priority}", f"tags      {', '.join(decision.tags) or '-'}",
        f"stage     {decision.stage or '-'}", f"language  {decision.language or '-'}",
        f"sla       {decision.sla}: first response {format_duration(policy.first_response)} "
        f"-> {local(deadlines.first_response_due)}; resolution "
        f"{format_duration(policy.resolution)} -> {local(deadlines.resolution_due)}",
    ]
    lines += [f"timer     {t.kind} -> {local(t.at)}" for t in found.timers]
    lines += [f"team      {decision.team or '-'} (skills: {', '.join(decision.skills) or '-'})",
              f"routing   {routing.summary}"]
    lines += [f"  {c.agent_id:<10} {c.reason}" for c in routing.candidates]
    lines += [f"reply     {found.reply}"] if found.reply else []
    return lines

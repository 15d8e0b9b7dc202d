"""`opsbot rules check|test`: validate rules.yaml and dry-run a message against it."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from rules import (
    AgentState,
    ContactFacts,
    Deadlines,
    Decision,
    HistoryFacts,
    MessageFacts,
    MessageType,
    RoutingResult,
    RulesConfig,
    RulesError,
    SlaClock,
    Timer,
    compute_deadlines,
    evaluate,
    format_duration,
    load_rules,
    pick_language_text,
    plan_timers,
    render_template,
    route,
)
from rules.eta import describe_due

rules_app = typer.Typer(help="Check rules.yaml and try messages against it.", no_args_is_help=True)

EXIT_INVALID = 2


def _default_path() -> Path:
    return Path(os.environ.get("RULES_PATH") or "rules.yaml")


def _load_or_exit(path: Path) -> RulesConfig:
    try:
        return load_rules(path)
    except RulesError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(EXIT_INVALID) from None


@rules_app.command("check")
def check(
    path: Annotated[Path | None, typer.Argument(help="Rules file (default: $RULES_PATH "
                                                     "or rules.yaml)")] = None,
) -> None:
    """Validate a rules file: exit 0 when valid, 2 with PATH:LINE:COL: message otherwise."""
    path = path or _default_path()
    config = _load_or_exit(path)
    typer.echo(f"OK {path}: {len(config.rules)} rules, {len(config.teams)} teams, "
               f"{len(config.agents)} agents, timezone {config.timezone}")


@rules_app.command("test")
def test(
    text: Annotated[str, typer.Option("--text", help="Message text")],
    rules_path: Annotated[Path | None, typer.Option("--rules", help="Rules file")] = None,
    message_type: Annotated[MessageType, typer.Option("--type")] = MessageType.text,
    phone: Annotated[str | None, typer.Option("--from", help="Customer phone")] = None,
    status: Annotated[str, typer.Option("--status", help="CRM status")] = "lead",
    at: Annotated[str | None, typer.Option("--at", help="ISO 8601 instant (default now)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show what a message would become: rules, task fields, deadlines and routing
    (every agent counted as available with no open tasks: there is no database here)."""
    config = _load_or_exit(rules_path or _default_path())
    now = _parse_instant(at)
    message = MessageFacts(text=text, type=message_type)
    decision = evaluate(config, message=message, contact=ContactFacts(name=None, status=status),
                        history=HistoryFacts(), now=now)
    deadlines = compute_deadlines(config, priority=decision.priority, start=now, sla=decision.sla)
    routing = route(config, team=decision.team, skills=decision.skills,
                    language=decision.language, agents=_everyone_free(config), now=now)
    reply = _sample_reply(config, decision, deadlines, phone, now)
    timers = _planned_timers(config, decision, deadlines, routing, now)
    if as_json:
        found = _as_dict(decision, deadlines, routing, reply, now)
        found["timers"] = [{"kind": t.kind, "at": t.at.isoformat()} for t in timers]
        typer.echo(json.dumps(found, indent=2, ensure_ascii=False))
    else:
        typer.echo(_as_text(config, decision, deadlines, routing, reply, now, timers))


def _planned_timers(config: RulesConfig, decision: Decision, deadlines: Deadlines,
                    routing: RoutingResult, now: datetime) -> list[Timer]:
    """The timers the worker schedules for the new task, offered as `routing` says (the
    planner the worker uses: no reminders while nobody has the task)."""
    clock = SlaClock(created_at=now, priority=str(decision.priority), sla_policy=decision.sla,
                     offered_at=now if routing.agent_id else None, assignee=routing.agent_id,
                     first_response_due=deadlines.first_response_due,
                     resolution_due=deadlines.resolution_due)
    return plan_timers(config, clock, now=now)


def _parse_instant(at: str | None) -> datetime:
    if at is None:
        return datetime.now(UTC)  # the CLI may read the clock; rules/ never does
    try:
        parsed = datetime.fromisoformat(at)
    except ValueError:
        raise typer.BadParameter(f"--at {at!r} is not ISO 8601 (2026-03-06T17:30+01:00)") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _everyone_free(config: RulesConfig) -> dict[str, AgentState]:
    return {agent.id: AgentState(agent.id) for agent in config.agents}


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


def _as_dict(decision: Decision, deadlines: Deadlines, routing: RoutingResult,
             reply: str | None, now: datetime) -> dict[str, object]:
    return {
        "at": now.isoformat(),
        "matched": [{"name": m.name, "reasons": list(m.reasons)} for m in decision.matched],
        "ignore": decision.ignore, "category": decision.category, "title": decision.title,
        "priority": str(decision.priority), "sla": decision.sla, "team": decision.team,
        "skills": list(decision.skills), "tags": list(decision.tags), "stage": decision.stage,
        "language": decision.language, "reply": reply,
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
    }


def _as_text(config: RulesConfig, decision: Decision, deadlines: Deadlines,
             routing: RoutingResult, reply: str | None, now: datetime,
             timers: list[Timer]) -> str:
    def local(at: datetime) -> str:
        return at.astimezone(config.tz).strftime("%a %Y-%m-%d %H:%M %Z")

    policy = config.policy(decision.sla)
    lines = [f"at        {local(now)}", "matched:"]
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
    lines += [f"timer     {t.kind} -> {local(t.at)}" for t in timers]
    lines += [f"team      {decision.team or '-'} (skills: {', '.join(decision.skills) or '-'})",
              f"routing   {routing.summary}"]
    lines += [f"  {c.agent_id:<10} {c.reason}" for c in routing.candidates]
    lines += [f"reply     {reply}"] if reply else []
    return "\n".join(lines)

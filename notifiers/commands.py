"""Running one agent command, whatever the surface (Slack, Telegram, console, API).

`run_command` does it all in one transaction: dedupe the delivery, find the agent, parse, run
the verb (whose store calls check permissions and write the audit trail) and answer in text.
The grammar (requests, results, the handler context) lives in `notifiers.grammar`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from notifiers.channels import Channel
from notifiers.grammar import (
    AssignTask,
    Command,
    CommandRequest,
    CommandResult,
    Context,
    parse_command,
)
from notifiers.verbs import READING_VERBS, VERBS, unknown_verb_text
from rules import Agent, RulesConfig
from store.db import Database
from store.errors import ConcurrentUpdate, DomainError, NotAllowed
from store.events import Audit, record_event
from store.inbound import record_command_delivery
from store.lifecycle import Actor, ActorKind


def actor_for(agent: Agent, config: RulesConfig) -> Actor:
    """The lifecycle actor of `agent`: member of its teams, supervisor of the teams it
    supervises, maybe admin."""
    supervises = frozenset(name for name, team in config.teams.items()
                           if team.supervisor == agent.id)
    return Actor(ActorKind.AGENT, id=agent.id, supervises=supervises, admin=agent.admin,
                 teams=frozenset(agent.teams))


def find_agent(config: RulesConfig, *, channel: str, user_id: str) -> Agent | None:
    """The agent behind a Slack or Telegram user id, or None."""
    if channel == Channel.SLACK:
        return config.agent_by_slack(user_id)
    if channel == Channel.TELEGRAM and user_id.lstrip("-").isdigit():
        return config.agent_by_telegram(int(user_id))
    return None


def run_command(
    db: Database,
    config: RulesConfig,
    request: CommandRequest,
    *,
    now: datetime,
    assign: AssignTask | None = None,
) -> CommandResult:
    """Runs one agent command and returns the answer for the agent.

    A replayed `dedupe_key` returns `duplicate=True` and changes nothing (a concurrent
    delivery of the key too, once the first one commits). Refusals (unknown user, not
    allowed) are audited as `denied`. Never raises DomainError: it becomes the text.
    """
    try:
        with db.transaction() as session:
            if request.dedupe_key and not _claim(session, request, now):
                return CommandResult("", duplicate=True, wrote=False)
            return _answer(session, config, request, now=now, assign=assign)
    except ConcurrentUpdate as exc:
        return CommandResult(str(exc), ok=False, wrote=False)


def _answer(session, config, request: CommandRequest, *, now, assign) -> CommandResult:
    agent = find_agent(config, channel=request.channel, user_id=request.user_id)
    if agent is None:
        record_event(session, task=None, actor=f"{request.channel}:{request.user_id}",
                     action=Audit.DENIED, at=now,
                     details={"reason": "unknown user", "text": request.text[:500]})
        return CommandResult(
            "Sorry, I do not know you yet. Ask an admin to add your "
            f"{request.channel.capitalize()} id ({request.user_id}) to rules.yaml.", ok=False)
    command = parse_command(request.text)
    context = Context(session, config, agent, actor_for(agent, config), now, assign,
                      request.dedupe_key or uuid.uuid4().hex)
    return run_verb(context, command)


def run_verb(context: Context, command: Command) -> CommandResult:
    """Runs one parsed command as `context`'s actor, in a savepoint: a refusal changes
    nothing (the chat commands and the API's actions both end here)."""
    handler = VERBS.get(command.verb)
    if handler is None:
        return CommandResult(unknown_verb_text(command.verb), ok=False, wrote=False)
    savepoint = context.session.begin_nested()
    try:
        text = handler(context, command)
    except DomainError as exc:
        savepoint.rollback()
        refused = isinstance(exc, NotAllowed)
        if refused:
            _audit_refusal(context, command, str(exc))
        return CommandResult(str(exc), ok=False, task_ref=_ref(context), wrote=refused)
    savepoint.commit()
    return CommandResult(text, task_ref=_ref(context), wrote=command.verb not in READING_VERBS)


def _audit_refusal(context: Context, command: Command, reason: str) -> None:
    task = context.task if context.task is not None and context.task.id else None
    record_event(context.session, task=task, actor=context.actor.label,
                 action=Audit.DENIED, at=context.now,
                 details={"verb": command.verb, "reason": reason})


def _ref(context: Context) -> str | None:
    return context.task.ref if context.task is not None else None


def _claim(session: Session, request: CommandRequest, now: datetime) -> bool:
    """Records this delivery once; False when it was seen before (a provider retry)."""
    return record_command_delivery(
        session, channel=request.channel, user_id=request.user_id,
        key=request.dedupe_key or "", text=request.text, now=now)

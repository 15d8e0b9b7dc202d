"""The agent command grammar, shared by Slack (`/ops accept T-12`) and Telegram (`/accept 12`).

`run_command` does it all in one transaction: dedupe the delivery, find the agent, parse, run
the verb (whose store calls check permissions and write the audit trail) and answer in text.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rules import Agent, RoutingResult, RulesConfig
from store.db import Database
from store.errors import ConcurrentUpdate, DomainError, NotAllowed
from store.events import Audit, record_event
from store.lifecycle import Actor, ActorKind
from store.models import EventStatus, InboundEvent, Task


class AssignTask(Protocol):
    """`bot.assignment.assign_task`: routes `task` and assigns it (passed in by bot/)."""

    def __call__(
        self,
        session: Session,
        *,
        config: RulesConfig,
        task: Task,
        now: datetime,
        exclude: Collection[str] = (),
    ) -> RoutingResult: ...


class UsageError(DomainError):
    """The command is incomplete or unknown; the message shows how to write it."""


@dataclass(frozen=True)
class Command:
    verb: str
    args: tuple[str, ...]

    def rest(self, skip: int) -> str:
        """The words after the first `skip` arguments, as one text."""
        return " ".join(self.args[skip:]).strip()


@dataclass(frozen=True)
class CommandRequest:
    """What a channel adapter received: who (in that channel) wrote what.

    `dedupe_key` identifies this delivery (Slack trigger id, Telegram update id): a replay
    with the same key does nothing.
    """

    channel: str  # "slack" | "telegram"
    user_id: str
    text: str
    dedupe_key: str | None = None


@dataclass(frozen=True)
class CommandResult:
    text: str
    ok: bool = True
    duplicate: bool = False
    task_ref: str | None = None


@dataclass
class Context:
    """What a verb handler works with; `task` is set by the handler once it knows it."""

    session: Session
    config: RulesConfig
    agent: Agent
    actor: Actor
    now: datetime
    assign: AssignTask | None
    request_key: str
    task: Task | None = None


Handler = Callable[[Context, Command], str]


def parse_command(text: str) -> Command:
    """`accept T-12` → Command("accept", ("T-12",)). An empty text means `help`.

    Tolerates a leading slash, a leading `ops` and a Telegram bot suffix (`/accept@bot 12`).
    """
    words = text.strip().split()
    if words and words[0].lstrip("/").split("@", 1)[0].lower() == "ops":
        words = words[1:]  # `/ops accept 12` typed in Telegram, or the Slack command echoed
    if not words:
        return Command("help", ())
    verb = words[0].lstrip("/").split("@", 1)[0].lower()
    return Command(verb, tuple(words[1:]))


def actor_for(agent: Agent, config: RulesConfig) -> Actor:
    """The lifecycle actor of `agent`: supervisor of the teams it supervises, maybe admin."""
    supervises = frozenset(name for name, team in config.teams.items()
                           if team.supervisor == agent.id)
    return Actor(ActorKind.AGENT, id=agent.id, supervises=supervises, admin=agent.admin)


def find_agent(config: RulesConfig, *, channel: str, user_id: str) -> Agent | None:
    """The agent behind a Slack or Telegram user id, or None."""
    if channel == "slack":
        return config.agent_by_slack(user_id)
    if channel == "telegram" and user_id.lstrip("-").isdigit():
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

    A replayed `dedupe_key` returns `duplicate=True` and changes nothing. Refusals (unknown
    user, not allowed) are audited as `denied`. Never raises DomainError: it becomes the text.
    """
    try:
        with db.transaction() as session:
            if request.dedupe_key and not _claim(session, request, now):
                return CommandResult("", duplicate=True)
            return _answer(session, config, request, now=now, assign=assign)
    except IntegrityError as exc:
        if "inbound_events" not in str(exc.orig):
            raise
        return CommandResult("", duplicate=True)  # a concurrent delivery of the key won
    except ConcurrentUpdate as exc:
        return CommandResult(str(exc), ok=False)


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
    return _run_verb(context, command)


def _run_verb(context: Context, command: Command) -> CommandResult:
    from notifiers.verbs import VERBS, unknown_verb_text

    handler = VERBS.get(command.verb)
    if handler is None:
        return CommandResult(unknown_verb_text(command.verb), ok=False)
    savepoint = context.session.begin_nested()
    try:
        text = handler(context, command)
    except DomainError as exc:
        savepoint.rollback()
        if isinstance(exc, NotAllowed):
            _audit_refusal(context, command, str(exc))
        return CommandResult(str(exc), ok=False, task_ref=_ref(context))
    savepoint.commit()
    return CommandResult(text, task_ref=_ref(context))


def _audit_refusal(context: Context, command: Command, reason: str) -> None:
    task = context.task if context.task is not None and context.task.id else None
    record_event(context.session, task=task, actor=context.actor.label,
                 action=Audit.DENIED, at=context.now,
                 details={"verb": command.verb, "reason": reason})


def _ref(context: Context) -> str | None:
    return context.task.ref if context.task is not None else None


def _claim(session: Session, request: CommandRequest, now: datetime) -> bool:
    """Records this delivery once; False when it was seen before (a provider retry)."""
    key = request.dedupe_key or ""
    seen = session.query(InboundEvent.id).filter_by(
        provider=request.channel, provider_event_id=key).first()
    if seen is not None:
        return False
    session.add(InboundEvent(
        provider=request.channel, provider_event_id=key, kind="command",
        contact_key=f"{request.channel}:{request.user_id}", occurred_at=now,
        raw_body=request.text.encode(), received_at=now, status=EventStatus.PROCESSED,
        dispatched_at=now, processed_at=now))
    session.flush()
    return True

"""The agent command grammar: what a surface hands in, what a verb works with, what it answers.

Slack (`/ops accept T-12`), Telegram (`/accept 12`), the console and the API all speak it;
`notifiers.commands.run_command` runs a request, `notifiers.verbs` holds the handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from rules import Agent, RoutingResult, RulesConfig
from store.errors import DomainError
from store.lifecycle import Actor
from store.models import Task


class AssignTask(Protocol):
    """`assign_task` of bot/'s assignment use case: routes `task` and assigns it (passed in
    by bot/, which notifiers/ may not import)."""

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
    """A parsed command: the verb (lower case) and the words after it."""

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
    """The answer for the agent; `duplicate` when the delivery was seen before (no answer).
    `wrote`: the command changed something (a card, a reply, a timer, the audit trail may wait
    for a drain); a listing, the help, a verb that failed (rolled back) or a replay did not."""

    text: str
    ok: bool = True
    duplicate: bool = False
    task_ref: str | None = None
    wrote: bool = True


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
    if words and _bare_verb(words[0]) == "ops":
        words = words[1:]  # `/ops accept 12` typed in Telegram, or the Slack command echoed
    if not words:
        return Command("help", ())
    return Command(_bare_verb(words[0]), tuple(words[1:]))


def _bare_verb(word: str) -> str:
    """`/Accept@opsbot_bot` → `accept`."""
    return word.lstrip("/").split("@", 1)[0].lower()

"""An agent's command from any surface (Slack, Telegram): the shared grammar, with routing
for the verbs that hand a task on (decline, back)."""

import logging
from datetime import datetime

from bot.usecases.assignment import assign_task
from notifiers.commands import run_command
from notifiers.grammar import CommandRequest, CommandResult
from rules import RulesConfig
from store.db import Database

log = logging.getLogger(__name__)

FAILED = "Sorry, that failed on our side and nothing was changed; please try again."


def run_agent_command(db: Database, config: RulesConfig, request: CommandRequest, *,
                      now: datetime) -> CommandResult:
    """Runs `request` in its own transaction; a replayed delivery comes back `duplicate`.
    Never raises: a failure is logged and answered with an apology (nothing committed)."""
    try:
        return run_command(db, config, request, now=now, assign=assign_task)
    except Exception:  # nothing was committed; the agent may simply try again
        verb = (request.text.split() or ["help"])[0]  # not the rest: it may quote a customer
        log.exception("agent command %r from %s:%s failed", verb, request.channel,
                      request.user_id)
        return CommandResult(FAILED, ok=False, wrote=False)

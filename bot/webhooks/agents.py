"""Running an agent command from a chat adapter: the shared step of Slack and Telegram.

The command (and its audit) commits in a worker thread; after the adapter has answered,
`dispatch_after` asks the workers for a drain of what it queued (card updates,
notifications, replies).
"""

import asyncio
import logging

from bot.assignment import assign_task
from bot.dispatch import request_drain
from bot.services import Services
from notifiers.commands import CommandRequest, CommandResult, run_command
from store.types import utcnow

log = logging.getLogger(__name__)
FAILED = "Sorry, that failed on our side and nothing was changed; please try again."


async def run_agent_command(services: Services, request: CommandRequest) -> CommandResult:
    """Runs `request` off the event loop; a replayed delivery comes back `duplicate`."""
    return await asyncio.to_thread(_run, services, request)


async def dispatch_after(services: Services, result: CommandResult) -> None:
    """Asks for a drain of what the command queued (nothing to do for a replay)."""
    if not result.duplicate:
        await asyncio.to_thread(request_drain, services)


def _run(services: Services, request: CommandRequest) -> CommandResult:
    try:
        return run_command(
            services.db, services.rules.current, request, now=utcnow(), assign=assign_task
        )
    except Exception:  # nothing was committed; the agent may simply try again
        verb = (request.text.split() or ["help"])[0]  # not the rest: it may quote a customer
        log.exception("agent command %r from %s:%s failed", verb, request.channel,
                      request.user_id)
        return CommandResult(FAILED, ok=False)

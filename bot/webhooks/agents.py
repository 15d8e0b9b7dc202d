"""Running an agent command from a chat adapter: the shared step of Slack and Telegram.

The command (and its audit) commits in a worker thread; after the adapter has answered,
`dispatch_after` asks the workers for a drain of what it queued (card updates,
notifications, replies).
"""

import asyncio

from bot.core.services import Services
from bot.usecases import commands
from bot.worker.drains import request_drain
from notifiers.grammar import CommandRequest, CommandResult
from store.types import utcnow


async def run_agent_command(services: Services, request: CommandRequest) -> CommandResult:
    """Runs `request` off the event loop; a replayed delivery comes back `duplicate`."""
    return await asyncio.to_thread(
        lambda: commands.run_agent_command(services.db, services.rules.current, request,
                                           now=utcnow()))


async def dispatch_after(services: Services, result: CommandResult) -> None:
    """Asks for a drain of what the command queued; a command that changed nothing (a
    listing, the help, a replay) queued nothing, and a drain job would cost a worker ~4 ms."""
    if result.wrote:
        await asyncio.to_thread(request_drain, services)

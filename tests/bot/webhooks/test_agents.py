"""An unexpected failure in a command answers politely and leaves nothing half done."""

import asyncio

from bot.usecases import commands
from bot.webhooks import agents
from notifiers.grammar import CommandRequest
from tests.bot.fixtures import make_services, make_settings


def test_a_crash_becomes_a_polite_answer_and_is_not_recorded(db, redis_url, tmp_path, monkeypatch):
    settings = make_settings(tmp_path, database_url=db.url, redis_url=redis_url)
    services = make_services(settings, db)

    def crash(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(commands, "run_command", crash)
    request = CommandRequest("slack", "U0ANA", "reply T-1 private text", dedupe_key="t1")
    result = asyncio.run(agents.run_agent_command(services, request))
    assert (result.ok, result.text) == (False, commands.FAILED)
    services.redis.close()

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


def drain_jobs(services) -> list[str]:
    return [i for i in services.jobs.queue.get_job_ids() if i.startswith("drain-")]


def test_only_a_command_that_changed_something_asks_for_a_drain(db, redis_url, tmp_path):
    settings = make_settings(tmp_path, database_url=db.url, redis_url=redis_url)
    services = make_services(settings, db)
    user = "U0ANA"  # ana in tests/notifiers/helpers.py

    def command(text: str, key: str):
        request = CommandRequest("slack", user, text, dedupe_key=key)
        result = asyncio.run(agents.run_agent_command(services, request))
        asyncio.run(agents.dispatch_after(services, result))
        return result

    for key, text in enumerate(["help", "tasks", "stats", "show T-404", "frobnicate"]):
        command(text, f"read-{key}")
    assert drain_jobs(services) == []  # a listing, the help, a refusal: nothing to send

    assert command("away", "write").wrote
    assert len(drain_jobs(services)) == 1
    assert not command("away", "write").wrote  # Slack's retry of it
    services.redis.close()

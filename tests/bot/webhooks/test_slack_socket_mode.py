"""`SLACK_APP_TOKEN` switches Slack to Socket Mode for the life of the web app."""

import asyncio

from bot.core.settings import Settings
from bot.webhooks import slack as slack_webhook


class RecordingHandler:
    """Stands in for slack_bolt's AsyncSocketModeHandler (no websocket server here)."""

    calls: list = []

    def __init__(self, app, app_token: str) -> None:
        self.calls.append(("created", app_token))

    async def connect_async(self) -> None:
        self.calls.append("connected")

    async def close_async(self) -> None:
        self.calls.append("closed")


def settings(**extra) -> Settings:
    return Settings(_env_file=None, slack_bot_token="xoxb-1", slack_signing_secret="s", **extra)


def run_lifespan(config: Settings) -> list:
    RecordingHandler.calls = []
    bolt = slack_webhook.build_bolt_app(config, slack_webhook._Holder())

    async def serve() -> None:
        async with slack_webhook._socket_mode(bolt, config):
            RecordingHandler.calls.append("serving")

    asyncio.run(serve())
    return RecordingHandler.calls


def test_socket_mode_connects_with_the_app_token_and_closes(monkeypatch):
    monkeypatch.setattr(
        "slack_bolt.adapter.socket_mode.async_handler.AsyncSocketModeHandler", RecordingHandler
    )
    calls = run_lifespan(settings(slack_app_token="xapp-1-TEST"))
    assert calls == [("created", "xapp-1-TEST"), "connected", "serving", "closed"]


def test_without_an_app_token_only_http_is_used(monkeypatch):
    monkeypatch.setattr(
        "slack_bolt.adapter.socket_mode.async_handler.AsyncSocketModeHandler", RecordingHandler
    )
    assert run_lifespan(settings()) == ["serving"]

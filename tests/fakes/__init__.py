"""The fake Graph/Slack/Telegram API servers for tests (they live in ``sandbox``)."""

from sandbox import FakeGraph, FakeSlack, FakeTelegram, Recorded, pywa_http_client

__all__ = ["FakeGraph", "FakeSlack", "FakeTelegram", "Recorded", "pywa_http_client"]

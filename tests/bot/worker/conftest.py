"""Fixtures of the worker tests."""

import pytest

from sandbox.slack import FakeSlack


@pytest.fixture
def slack(monkeypatch):
    """The fake Slack, with the settings that point the services at it."""
    with FakeSlack() as fake:
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
        monkeypatch.setenv("SLACK_SIGNING_SECRET", "secret")
        monkeypatch.setenv("SLACK_API_BASE_URL", fake.api_url)
        yield fake

"""Services wired to the fake Slack, Telegram and Graph servers, for delivery and app tests."""

from __future__ import annotations

from pathlib import Path

from redis import Redis

from bot.core.bootstrap import build_senders, build_whatsapp_sender
from bot.core.jobs import Jobs
from bot.core.services import Services
from bot.core.settings import Settings
from rules import RulesHolder
from store.db import Database
from tests.notifiers.helpers import RULES

SLACK_TOKEN = "xoxb-test-token"
SLACK_SECRET = "slack-signing-secret"
TELEGRAM_TOKEN = "123456:TEST-telegram-token"
TELEGRAM_SECRET = "telegram-webhook-secret"


def make_settings(tmp_path: Path, *, database_url: str, redis_url: str, slack=None,
                  telegram=None, graph=None, rules: str = RULES) -> Settings:
    """Settings for the fakes that are given (a channel is on when its fake is)."""
    path = tmp_path / "rules.yaml"
    path.write_text(rules, encoding="utf-8")
    values = {"database_url": database_url, "redis_url": redis_url, "rules_path": path}
    if slack is not None:
        values.update(slack_bot_token=SLACK_TOKEN, slack_signing_secret=SLACK_SECRET,
                      slack_api_base_url=slack.url)
    if telegram is not None:
        values.update(telegram_bot_token=TELEGRAM_TOKEN, telegram_webhook_secret=TELEGRAM_SECRET,
                      telegram_api_base_url=telegram.url)
    if graph is not None:
        values.update(whatsapp_token="wa-token", whatsapp_app_secret="wa-secret",
                      whatsapp_verify_token="wa-verify", whatsapp_phone_id="1000000001",
                      whatsapp_api_base_url=graph.url)
    return Settings(_env_file=None, **values)


def make_services(settings: Settings, db: Database) -> Services:
    redis = Redis.from_url(settings.redis_url)
    return Services(settings=settings, db=db, rules=RulesHolder(settings.rules_path),
                    redis=redis, jobs=Jobs(redis), senders=build_senders(settings),
                    whatsapp=build_whatsapp_sender(settings))

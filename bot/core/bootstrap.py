"""The one place that turns settings into connected parts: database, rules, Redis, jobs and
the senders of every channel that is on."""

from redis import Redis

from bot.core.jobs import Jobs
from bot.core.services import Services
from bot.core.settings import ConfigError, Settings
from bot.whatsapp.sending import WhatsAppSender
from notifiers.channels import ChannelSender
from notifiers.slack import SlackSender
from notifiers.telegram import TelegramSender
from rules import RulesHolder
from store.db import Database, upgrade_database


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """The configured database, migrated to the latest schema unless told otherwise."""
    url = settings.effective_database_url
    if migrate:
        upgrade_database(url)
    return Database(url)


def build_senders(settings: Settings) -> dict[str, ChannelSender]:
    """The agent channels' senders, by channel name (a channel that is off has none)."""
    senders: list[ChannelSender] = []
    if settings.slack_enabled:
        senders.append(SlackSender(settings.slack_bot_token or "", settings.slack_api_base_url))
    if settings.telegram_enabled:
        senders.append(
            TelegramSender(settings.telegram_bot_token or "", settings.telegram_api_base_url))
    return {sender.channel: sender for sender in senders}


def build_whatsapp_sender(settings: Settings) -> WhatsAppSender | None:
    """The customers' channel (None when WhatsApp is off)."""
    if not settings.whatsapp_enabled:
        return None
    return WhatsAppSender(phone_id=settings.whatsapp_phone_id or "",
                          token=settings.whatsapp_token or "",
                          api_base_url=settings.whatsapp_api_base_url)


def build_services(settings: Settings, *, migrate: bool = True) -> Services:
    """Connects the database, rules, Redis, the job queue and the senders named by `settings`.

    Raises RulesError when the rules file is invalid, ConfigError when Redis is not set.
    """
    if not settings.redis_url:
        raise ConfigError("REDIS_URL is not set (`opsbot run` starts an embedded Redis)")
    redis = Redis.from_url(settings.redis_url)
    return Services(
        settings=settings,
        db=open_database(settings, migrate=migrate),
        rules=RulesHolder(settings.rules_path),
        redis=redis,
        jobs=Jobs(redis),
        senders=build_senders(settings),
        whatsapp=build_whatsapp_sender(settings),
    )

"""The one place that turns settings into connected parts."""

from redis import Redis

from bot.delivery import channel_senders
from bot.jobs import Jobs
from bot.services import Services
from bot.settings import ConfigError, Settings
from rules import RulesHolder
from store.db import Database, upgrade_database


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """The configured database, migrated to the latest schema unless told otherwise."""
    url = settings.effective_database_url
    if migrate:
        upgrade_database(url)
    return Database(url)


def build_services(settings: Settings, *, migrate: bool = True) -> Services:
    """Connects the database, rules, Redis and the job queue named by `settings`.

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
        **channel_senders(settings),
    )

"""The connected parts a process works with, built once by `build_services`."""

from dataclasses import dataclass

from redis import Redis

from bot.jobs import Jobs
from bot.settings import Settings
from notifiers.slack import SlackSender
from notifiers.telegram import TelegramSender
from rules import RulesHolder
from store.db import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    rules: RulesHolder
    redis: Redis
    jobs: Jobs
    slack: SlackSender | None = None  # None: the channel is off
    telegram: TelegramSender | None = None

    def close(self) -> None:
        self.db.dispose()
        self.redis.close()

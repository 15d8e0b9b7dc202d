"""The connected parts a process works with, built once by `build_services`."""

from dataclasses import dataclass

from redis import Redis

from bot.jobs import Jobs
from bot.settings import Settings
from rules import RulesHolder
from store.db import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    rules: RulesHolder
    redis: Redis
    jobs: Jobs

    def close(self) -> None:
        self.db.dispose()
        self.redis.close()

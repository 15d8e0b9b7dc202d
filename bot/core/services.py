"""The connected parts a process works with, built once by `bootstrap.build_services`."""

from dataclasses import dataclass, field

from redis import Redis

from bot.core.jobs import Jobs
from bot.core.media_links import MediaLinks
from bot.core.settings import Settings
from bot.whatsapp.sending import WhatsAppSender
from notifiers.channels import ChannelSender
from rules import RulesHolder
from store.db import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    rules: RulesHolder
    redis: Redis
    jobs: Jobs
    senders: dict[str, ChannelSender] = field(default_factory=dict)  # agent channels that are on
    whatsapp: WhatsAppSender | None = None  # None: WhatsApp is off
    media_links: MediaLinks | None = None  # None: no PUBLIC_URL, or WhatsApp is off

    def close(self) -> None:
        self.db.dispose()
        self.redis.close()

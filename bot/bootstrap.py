"""The one place that turns settings into connected parts."""

from bot.settings import Settings
from store.db import Database, upgrade_database


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """The configured database, migrated to the latest schema unless told otherwise."""
    url = settings.effective_database_url
    if migrate:
        upgrade_database(url)
    return Database(url)

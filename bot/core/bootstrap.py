"""The one place that turns settings into connected parts: database, rules, Redis, jobs and
the senders of every channel that is on."""

import gc
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import configure_mappers

from bot.core import tunables
from bot.core.jobs import Jobs
from bot.core.media_links import MediaLinks
from bot.core.services import Services
from bot.core.settings import ConfigError, Settings, hide_password, reveal
from bot.whatsapp.sending import WhatsAppSender
from notifiers.channels import ChannelSender
from notifiers.slack import SlackSender
from notifiers.telegram import TelegramSender
from rules import RulesHolder
from store import keys
from store.db import Database, create_owner_only, is_unavailable, upgrade_database


def freeze_heap() -> None:
    """Takes what is alive once a process has started (its modules, the ORM's mappers, the
    rules, the app) out of the garbage collector's sight, for a long-running web process or
    worker. A full collection walks every tracked object: some 250,000 after start-up, 60-90
    ms each, a pause in the middle of a request or a drain; with them frozen, a worker's full
    collections under load took ~20 ms. Later objects are collected as before. The mappers
    are configured first (SQLAlchemy does it on the first use of a model otherwise: a pause
    of tens of milliseconds in the first request or drain, and objects left unfrozen)."""
    configure_mappers()
    gc.collect()
    gc.freeze()


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """The configured database, migrated to the latest schema unless told otherwise.

    Raises ConfigError when DATABASE_URL cannot be used or, migrating, the database does not
    answer (see `database_errors_explained`)."""
    url = settings.effective_database_url
    configure_keys(settings)
    with database_errors_explained(settings):
        if migrate:
            upgrade_database(url)
        return Database(url)


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def configure_keys(settings: Settings, *, say: Callable[[str], None] = _say) -> None:
    """Gives this process the keys that seal customer data: OPSBOT_DATA_KEYS and
    OPSBOT_INDEX_KEY, or with SQLite and neither set, the key file beside the database (made,
    owner-only, for a new database). Raises ConfigError when they are missing or malformed."""
    data, index = reveal(settings.opsbot_data_keys), reveal(settings.opsbot_index_key)
    try:
        if data or index or settings.key_file is None:
            keys.configure(keys.parse_keys(data, index))
            return
        keys.configure(_key_file_keys(settings.key_file, settings.sqlite_path, say))
    except keys.KeysError as exc:
        where = "PostgreSQL needs them" if settings.key_file is None else "set both or neither"
        raise ConfigError(f"{exc} ({where}; README: Security and compliance)") from exc


def _key_file_keys(path: Path, database: Path, say: Callable[[str], None]) -> keys.Keys:
    if not path.is_file():
        if _holds_sealed_data(database):
            raise ConfigError(f"the key file {path.resolve()} is missing, and the data in "
                              f"{database.resolve()} cannot be read without it: restore it, "
                              "or set OPSBOT_DATA_KEYS and OPSBOT_INDEX_KEY")
        create_owner_only(path)
        path.write_text(KEY_FILE_HEADER + f"OPSBOT_DATA_KEYS={keys.new_master_entry()}\n"
                        f"OPSBOT_INDEX_KEY={keys.new_key()}\n")
        say(f"opsbot: created the data keys in {path.resolve()} (owner-only): back it up with "
            "the database; without it the customer data cannot be read")
    values = dict(line.split("=", 1) for line in path.read_text().splitlines()
                  if "=" in line and not line.startswith("#"))
    return keys.parse_keys(values.get("OPSBOT_DATA_KEYS"), values.get("OPSBOT_INDEX_KEY"))


KEY_FILE_HEADER = ("# opsbot's keys for the SQLite database beside this file (README: Security and "
                   "compliance).\n# Keep it with the database's backups and nowhere else.\n")


def _holds_sealed_data(database: Path) -> bool:
    if not database.is_file():
        return False
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        try:
            return connection.execute("SELECT 1 FROM data_keys LIMIT 1").fetchone() is not None
        except sqlite3.OperationalError:  # no such table: a database from before encryption
            return False


@contextmanager
def database_errors_explained(settings: Settings) -> Iterator[None]:
    """Turns an unusable DATABASE_URL, or a database that cannot be reached, into a ConfigError
    of one line that says what to do; other errors pass unchanged."""
    try:
        yield
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"DATABASE_URL cannot be used ({first_line(exc)}): fix it, or leave "
                          f"it unset for SQLite under var/") from exc
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        reason = first_line(getattr(exc, "orig", None) or exc)
        raise ConfigError(f"cannot open the database {settings.database_label} ({reason}): "
                          f"start it, or fix DATABASE_URL") from exc


def first_line(error: BaseException) -> str:
    """The first line of an error's message (drivers add hints and links below it)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__


def build_senders(settings: Settings) -> dict[str, ChannelSender]:
    """The agent channels' senders, by channel name (a channel that is off has none)."""
    senders: list[ChannelSender] = []
    if settings.slack_enabled:
        senders.append(SlackSender(reveal(settings.slack_bot_token), settings.slack_api_base_url))
    if settings.telegram_enabled:
        senders.append(
            TelegramSender(reveal(settings.telegram_bot_token), settings.telegram_api_base_url))
    return {sender.channel: sender for sender in senders}


def build_whatsapp_sender(settings: Settings) -> WhatsAppSender | None:
    """The customers' channel (None when WhatsApp is off)."""
    if not settings.whatsapp_enabled:
        return None
    return WhatsAppSender(phone_id=settings.whatsapp_phone_ids[0],
                          token=reveal(settings.whatsapp_token),
                          api_base_url=settings.whatsapp_api_base_url)


def build_media_links(settings: Settings) -> MediaLinks | None:
    """The signer of the cards' media links (None without PUBLIC_URL or WhatsApp)."""
    if not settings.media_links_enabled:
        return None
    return MediaLinks(str(settings.public_url), reveal(settings.whatsapp_app_secret),
                      tunables.MEDIA_LINK_TTL)


def connect_redis(url: str, *, for_worker: bool = False) -> Redis:
    """A Redis client whose timeouts fit its process: short in the web process, so that a
    hanging Redis fails a request within seconds; in a worker, longer than RQ's blocking wait
    for a job. A timeout is never retried (the command may have run, and a hanging server would
    be waited for again); a dropped connection is retried once, at once."""
    answer_within = worker_socket_timeout() if for_worker else tunables.REDIS_SOCKET_TIMEOUT
    try:
        return Redis.from_url(
            url,
            socket_connect_timeout=tunables.REDIS_CONNECT_TIMEOUT,
            socket_timeout=answer_within,
            health_check_interval=tunables.REDIS_HEALTH_CHECK_INTERVAL,
            retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
        )
    except ValueError as exc:  # redis-py's word for a URL it cannot read
        raise ConfigError(f"REDIS_URL cannot be used ({first_line(exc)}): fix it, or leave it "
                          f"unset (`opsbot run` starts an embedded Redis)") from exc


def check_redis(redis: Redis, url: str) -> None:
    """Raises ConfigError, saying what to do, when Redis does not answer a PING."""
    try:
        redis.ping()
    except (RedisError, OSError) as exc:
        raise ConfigError(f"Redis at {hide_password(url)} does not answer ({first_line(exc)}): "
                          f"start it, or fix REDIS_URL") from exc


def worker_socket_timeout() -> float:
    """Seconds a worker's Redis client waits for an answer: RQ's blocking dequeue
    (`Worker.dequeue_timeout`: WORKER_TTL - 15 s) plus WORKER_REDIS_MARGIN."""
    return max(1, tunables.WORKER_TTL - 15) + tunables.WORKER_REDIS_MARGIN


def build_services(settings: Settings, *, migrate: bool = True,
                   for_worker: bool = False) -> Services:
    """Connects the database, rules, Redis, the job queue and the senders named by `settings`;
    `for_worker` gives Redis the timeouts of an RQ worker (see `connect_redis`).

    Raises RulesError when the rules file is invalid, ConfigError when Redis is not set.
    """
    if not settings.redis_url:
        raise ConfigError("REDIS_URL is not set (`opsbot run` starts an embedded Redis)")
    redis = connect_redis(settings.redis_url, for_worker=for_worker)
    return Services(
        settings=settings,
        db=open_database(settings, migrate=migrate),
        rules=RulesHolder(settings.rules_path),
        redis=redis,
        jobs=Jobs(redis),
        senders=build_senders(settings),
        whatsapp=build_whatsapp_sender(settings),
        media_links=build_media_links(settings),
    )

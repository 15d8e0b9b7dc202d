"""Runtime configuration, read from the environment and `.env` by the entry points only."""

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The one place that says where opsbot keeps its data when DATABASE_URL is unset: SQLite in
# var/ under the working directory, so each folder is its own installation (`opsbot run`, the
# demo and the tests each get theirs). Every command names the database it uses (README:
# Configuration).
VAR_DIR = Path("var")
DEFAULT_DATABASE = VAR_DIR / "opsbot.db"
DATABASE_SCHEMES = ("sqlite", "postgresql")  # SQLAlchemy backends the migrations support
REDIS_SCHEMES = ("redis", "rediss", "unix")
DATABASE_HELP = ("Data: DATABASE_URL, else SQLite at var/opsbot.db under the folder it runs in "
                 "(README: Configuration).")


class ConfigError(Exception):
    """The configuration cannot start opsbot; the message says what to set."""


class Settings(BaseSettings):
    """Every environment variable opsbot reads (names are a contract: see the README)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = None
    redis_url: str | None = None
    rules_path: Path = Path("rules.yaml")

    whatsapp_phone_id: str | None = None  # one number id, or several separated by commas
    whatsapp_token: SecretStr | None = None
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_verify_token: SecretStr | None = None
    whatsapp_api_base_url: str | None = None

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_base_url: str = "https://slack.com"

    telegram_bot_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org"

    # Master keys (ID:KEY,…: the first wraps) and the blind-index key (store/keys.py). Unset
    # with SQLite: a key file beside the database is made and used (README: Security).
    opsbot_data_keys: SecretStr | None = None
    opsbot_index_key: SecretStr | None = None

    public_url: str | None = None  # https base where agents reach opsbot: media links on cards

    log_level: str = "INFO"  # LOG_LEVEL: DEBUG, INFO, WARNING…; secrets are redacted at all

    @field_validator("database_url")
    @classmethod
    def _normalise_postgres_scheme(cls, url: str | None) -> str | None:
        # Heroku-style URLs say postgres://; SQLAlchemy wants a dialect+driver name.
        if url and url.startswith(("postgres://", "postgresql://")):
            return "postgresql+psycopg://" + url.split("://", 1)[1]
        if url and _scheme(url) not in DATABASE_SCHEMES:
            raise ConfigError(_unsupported("DATABASE_URL", url, "a PostgreSQL URL "
                                           "(postgresql://USER:PASSWORD@HOST:5432/NAME)",
                                           f"SQLite at {DEFAULT_DATABASE}"))
        return url or None

    @field_validator("redis_url")
    @classmethod
    def _known_redis_scheme(cls, url: str | None) -> str | None:
        if url and _scheme(url) not in REDIS_SCHEMES:
            raise ConfigError(_unsupported("REDIS_URL", url, "redis://HOST:6379/0, rediss://… "
                                           "or unix:///PATH", "`opsbot run` starts an "
                                           "embedded Redis"))
        return url or None

    @field_validator("public_url")
    @classmethod
    def _web_address(cls, url: str | None) -> str | None:
        if url and _scheme(url) not in ("https", "http"):
            raise ConfigError("PUBLIC_URL must be the https:// address where agents reach "
                              "opsbot (https://ops.example.com), or unset (no media links)")
        return url.rstrip("/") if url else None

    @model_validator(mode="after")
    def _channels_need_their_secrets(self) -> "Settings":
        missing = [
            secret
            for token, secret in (
                ("whatsapp_token", "whatsapp_app_secret"),
                ("whatsapp_token", "whatsapp_verify_token"),
                ("whatsapp_token", "whatsapp_phone_id"),
                ("slack_bot_token", "slack_signing_secret"),
                ("telegram_bot_token", "telegram_webhook_secret"),
            )
            if getattr(self, token) and not self._given(secret)
        ]
        if missing:
            names = ", ".join(name.upper() for name in missing)
            raise ConfigError(f"a channel is on but its secret is missing: set {names}")
        return self

    def _given(self, name: str) -> bool:
        # WHATSAPP_PHONE_ID of commas and spaces names no number: as good as unset
        return bool(self.whatsapp_phone_ids if name == "whatsapp_phone_id" else getattr(self, name))

    @property
    def effective_database_url(self) -> str:
        """The database to use: `DATABASE_URL`, or SQLite under var/."""
        return self.database_url or f"sqlite:///{DEFAULT_DATABASE.resolve()}"

    @property
    def database_label(self) -> str:
        """The database in words, for the first line of a command (no password)."""
        if not self.database_url:
            return f"SQLite at {DEFAULT_DATABASE.resolve()} (DATABASE_URL is not set)"
        return hide_password(self.database_url)

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, or None on PostgreSQL."""
        url = self.effective_database_url
        if _scheme(url) != "sqlite":
            return None
        return Path(url.split(":///", 1)[1].split("?", 1)[0])

    @property
    def key_file(self) -> Path | None:
        """Where the keys of a SQLite database are kept when OPSBOT_DATA_KEYS is unset: beside
        it (None on PostgreSQL: keys must be configured)."""
        path = self.sqlite_path
        return path.with_name(path.stem + ".keys") if path is not None else None

    @property
    def uses_default_database(self) -> bool:
        return not self.database_url

    @property
    def whatsapp_enabled(self) -> bool:
        return bool(self.whatsapp_token)

    @property
    def whatsapp_phone_ids(self) -> tuple[str, ...]:
        """The business's WhatsApp numbers (`WHATSAPP_PHONE_ID`: ids separated by commas);
        the first is the one a message goes out from when no conversation names one."""
        return tuple(filter(None, (part.strip() for part in
                                   (self.whatsapp_phone_id or "").split(","))))

    @property
    def media_links_enabled(self) -> bool:
        """Cards link the customer's media: PUBLIC_URL is set and WhatsApp (token and app
        secret, which signs the links) is on."""
        return bool(self.public_url and self.whatsapp_token and self.whatsapp_app_secret)

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_bot_token)

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_bot_token)

    def secrets(self) -> list[str]:
        """Every configured secret (tokens, signing secrets, passwords in the URLs), for the
        log redaction."""
        values = [reveal(getattr(self, name)) for name in SECRET_FIELDS]
        values += [entry.partition(":")[2] for entry in reveal(self.opsbot_data_keys).split(",")]
        values += [urlsplit(url).password or "" for url in (self.database_url, self.redis_url)
                   if url]
        return [value for value in values if value]


SECRET_FIELDS = ("whatsapp_token", "whatsapp_app_secret", "whatsapp_verify_token",
                 "slack_bot_token", "slack_signing_secret", "slack_app_token",
                 "telegram_bot_token", "telegram_webhook_secret", "opsbot_index_key")


def hide_password(url: str) -> str:
    """`url` with its password, if any, replaced by stars."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def _scheme(url: str) -> str:
    """The backend of a URL (`postgresql` for postgresql+psycopg://…; "" when none)."""
    head, found, _ = url.partition("://")
    return head.split("+", 1)[0].lower() if found else ""


def _unsupported(name: str, url: str, use: str, unset: str) -> str:
    # Never the URL itself in the message: it may hold a password.
    scheme = _scheme(url)
    what = f"{scheme}:// is not supported" if scheme else "is not a URL (no scheme://)"
    return f"{name} {what}: use {use}, or leave it unset ({unset})"


def reveal(secret: SecretStr | str | None) -> str:
    """The plain value of a secret setting ("" when it is not set)."""
    if isinstance(secret, SecretStr):
        return secret.get_secret_value()
    return secret or ""

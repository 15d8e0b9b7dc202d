"""Runtime configuration, read from the environment and `.env` by the entry points only."""

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

VAR_DIR = Path("var")


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

    log_level: str = "INFO"  # LOG_LEVEL: DEBUG, INFO, WARNING…; secrets are redacted at all

    @field_validator("database_url")
    @classmethod
    def _normalise_postgres_scheme(cls, url: str | None) -> str | None:
        # Heroku-style URLs say postgres://; SQLAlchemy wants a dialect+driver name.
        if url and url.startswith(("postgres://", "postgresql://")):
            return "postgresql+psycopg://" + url.split("://", 1)[1]
        return url or None

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
            if getattr(self, token) and not getattr(self, secret)
        ]
        if missing:
            names = ", ".join(name.upper() for name in missing)
            raise ConfigError(f"a channel is on but its secret is missing: set {names}")
        return self

    @property
    def effective_database_url(self) -> str:
        """The database to use: `DATABASE_URL`, or SQLite under var/."""
        return self.database_url or f"sqlite:///{(VAR_DIR / 'opsbot.db').resolve()}"

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
    def slack_enabled(self) -> bool:
        return bool(self.slack_bot_token)

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_bot_token)

    def secrets(self) -> list[str]:
        """Every configured secret (tokens, signing secrets, passwords in the URLs), for the
        log redaction."""
        values = [reveal(getattr(self, name)) for name in SECRET_FIELDS]
        values += [urlsplit(url).password or "" for url in (self.database_url, self.redis_url)
                   if url]
        return [value for value in values if value]


SECRET_FIELDS = ("whatsapp_token", "whatsapp_app_secret", "whatsapp_verify_token",
                 "slack_bot_token", "slack_signing_secret", "slack_app_token",
                 "telegram_bot_token", "telegram_webhook_secret")


def reveal(secret: SecretStr | str | None) -> str:
    """The plain value of a secret setting ("" when it is not set)."""
    if isinstance(secret, SecretStr):
        return secret.get_secret_value()
    return secret or ""

import pytest

from bot.core.settings import ConfigError, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)


def test_defaults_use_sqlite_under_var():
    settings = Settings()
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith("/var/opsbot.db")
    assert not (settings.whatsapp_enabled or settings.slack_enabled or settings.telegram_enabled)


@pytest.mark.parametrize("url", ["postgres://u:p@db:5432/ops", "postgresql://u:p@db:5432/ops"])
def test_postgres_urls_are_accepted(monkeypatch, url):
    monkeypatch.setenv("DATABASE_URL", url)
    assert Settings().effective_database_url == "postgresql+psycopg://u:p@db:5432/ops"


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET"),
        ({"TELEGRAM_BOT_TOKEN": "1:A"}, "TELEGRAM_WEBHOOK_SECRET"),
        ({"WHATSAPP_TOKEN": "t", "WHATSAPP_PHONE_ID": "1", "WHATSAPP_VERIFY_TOKEN": "v"},
         "WHATSAPP_APP_SECRET"),
    ],
)
def test_a_channel_without_its_secret_refuses_to_start(monkeypatch, env, missing):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=missing):
        Settings()


def test_dotenv_is_read(tmp_path):
    (tmp_path / ".env").write_text("REDIS_URL=redis://127.0.0.1:6379/3\nRULES_PATH=x.yaml\n")
    settings = Settings()
    assert (settings.redis_url, str(settings.rules_path)) == ("redis://127.0.0.1:6379/3", "x.yaml")


def test_secrets_never_print_and_are_all_known_to_the_log_redaction():
    settings = Settings(_env_file=None, slack_bot_token="xoxb-1", slack_signing_secret="sig-2",
                        telegram_bot_token="1:tg-3", telegram_webhook_secret="hook-4",
                        database_url="postgresql://ops:pw-5@db/ops")
    assert not {"xoxb-1", "sig-2", "1:tg-3", "hook-4"} & set(repr(settings).split("'"))
    assert "xoxb-1" not in repr(settings) and "xoxb-1" not in str(settings.model_dump())
    assert set(settings.secrets()) == {"xoxb-1", "sig-2", "1:tg-3", "hook-4", "pw-5"}


def test_a_phone_id_list_of_only_commas_names_no_number():
    with pytest.raises(ConfigError, match="WHATSAPP_PHONE_ID"):
        Settings(_env_file=None, whatsapp_token="t", whatsapp_app_secret="a",
                 whatsapp_verify_token="v", whatsapp_phone_id=" , ")
    several = Settings(_env_file=None, whatsapp_token="t", whatsapp_app_secret="a",
                       whatsapp_verify_token="v", whatsapp_phone_id="111, 222,")
    assert several.whatsapp_phone_ids == ("111", "222")

"""`opsbot telegram set-webhook URL` against the fake Telegram Bot API."""

from typer.testing import CliRunner

from bot.cli import app
from sandbox import FakeTelegram

TOKEN, SECRET = "123456:TEST-token", "the-webhook-secret"


def env(fake: FakeTelegram, **extra) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_API_BASE_URL": fake.url,
        **extra,
    }


def test_set_webhook_registers_the_url_with_the_secret_and_the_menu(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    with FakeTelegram(token=TOKEN) as fake:
        result = CliRunner().invoke(
            app, ["telegram", "set-webhook", "https://ops.example.com"], env=env(fake)
        )
        assert result.exit_code == 0, result.output
        assert "https://ops.example.com/telegram/webhook" in result.output
        assert fake.webhook["url"] == "https://ops.example.com/telegram/webhook"
        assert fake.webhook["secret_token"] == SECRET
        assert fake.webhook["allowed_updates"] == ["message", "callback_query"]
        [menu] = fake.calls("setMyCommands")
        commands = {c["command"]: c["description"] for c in menu.params["commands"]}
        assert commands["accept"] == "take a task offered to you."


def test_set_webhook_without_telegram_configured_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["telegram", "set-webhook", "https://ops.example.com"])
    assert result.exit_code == 2
    assert "TELEGRAM_BOT_TOKEN" in result.output

"""`opsbot telegram set-webhook URL`: point the Telegram bot at this opsbot."""

import asyncio

import typer
from telegram import Bot, BotCommand
from telegram.error import TelegramError

from bot.cli.support import load_settings
from bot.core.settings import Settings, reveal
from bot.webhooks.telegram import PATH
from notifiers.telegram import bot_api_url
from notifiers.verbs import VERBS

telegram_app = typer.Typer(help="Telegram bot set-up.")
ALLOWED_UPDATES = ["message", "callback_query"]


@telegram_app.command("set-webhook")
def set_webhook(
    url: str = typer.Argument(help="Public https URL of opsbot (…/telegram/webhook is added)."),
    drop_pending: bool = typer.Option(False, help="Forget updates Telegram still holds."),
) -> None:
    """Register URL with Telegram, signed with TELEGRAM_WEBHOOK_SECRET, and the command menu."""
    settings = _telegram_settings()
    target = url if url.rstrip("/").endswith(PATH) else url.rstrip("/") + PATH
    try:
        asyncio.run(_register(settings, target, drop_pending=drop_pending))
    except TelegramError as exc:
        typer.echo(f"opsbot: Telegram refused the webhook: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"Telegram will post updates to {target}")


async def _register(settings: Settings, url: str, *, drop_pending: bool) -> None:
    base = bot_api_url(settings.telegram_api_base_url)
    async with Bot(reveal(settings.telegram_bot_token), base_url=base) as bot:
        await bot.set_webhook(url=url, secret_token=reveal(settings.telegram_webhook_secret),
                              allowed_updates=ALLOWED_UPDATES, drop_pending_updates=drop_pending)
        await bot.set_my_commands(command_menu())


def command_menu() -> list[BotCommand]:
    """The verbs as Telegram's command menu, described by their help lines."""
    menu = []
    for verb, handler in VERBS.items():
        line = (handler.__doc__ or verb).strip().splitlines()[0]
        menu.append(BotCommand(verb, line.split("—", 1)[-1].strip()[:256]))
    return menu


def _telegram_settings() -> Settings:
    settings = load_settings()
    if not settings.telegram_enabled:
        typer.echo("opsbot: TELEGRAM_BOT_TOKEN is not set: Telegram is off", err=True)
        raise typer.Exit(2)
    return settings

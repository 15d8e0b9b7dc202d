"""`POST /telegram/webhook`: `/<verb> …` commands and inline-keyboard buttons.

The body is read with a limit (413); the `X-Telegram-Bot-Api-Secret-Token` header must match
`TELEGRAM_WEBHOOK_SECRET` (else 403); a body that is not a JSON Update gets 400. The update is
fed to a python-telegram-bot `Application` (no updater) that runs with the web app. An
`update_id` is recorded once in the database: a redelivered update does nothing.

Commands and buttons act only in a private chat with the bot: a group sees no task data, only
a pointer to the private chat. An edited message never runs a command (an edit of `/reply …`
would otherwise send the customer a second reply).
"""

import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from telegram import Bot, Message, Update
from telegram.constants import ChatType
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bot.core import tunables
from bot.core.services import Services
from bot.core.settings import Settings, reveal
from bot.webhooks.agents import dispatch_after, run_agent_command
from bot.webhooks.body import BodyRefused, read_body, refusal
from notifiers.grammar import CommandRequest, CommandResult
from notifiers.telegram import (
    bot_api_url,
    callback_answer_text,
    fit_text,
    parse_callback_data,
)

PATH = "/telegram/webhook"
SECRET_HEADER = "x-telegram-bot-api-secret-token"
# New messages only (edits never run a command), and where: a private chat or a group.
NEW_COMMAND = filters.COMMAND & filters.UpdateType.MESSAGE
IN_PRIVATE = filters.ChatType.PRIVATE
IN_GROUP = filters.ChatType.GROUPS
PRIVATE_ONLY = "Commands work only in a private chat with me: https://t.me/{username}"
BUTTONS_PRIVATE_ONLY = "Buttons work only in a private chat with me."


def build_router() -> APIRouter:
    """The Telegram route; the bot Application starts and stops with the web app."""
    router = APIRouter(lifespan=_lifespan)
    router.add_api_route(PATH, receive, methods=["POST"])
    return router


def build_application(settings: Settings) -> Application:
    """The bot Application (no updater: updates come from the webhook route)."""
    application = (
        Application.builder()
        .token(reveal(settings.telegram_bot_token))
        .base_url(bot_api_url(settings.telegram_api_base_url))
        .base_file_url(bot_api_url(settings.telegram_api_base_url, "file"))
        .updater(None)
        .build()
    )
    application.add_handler(MessageHandler(NEW_COMMAND & IN_PRIVATE, on_command))
    application.add_handler(MessageHandler(NEW_COMMAND & IN_GROUP, on_group_command))
    application.add_handler(CallbackQueryHandler(on_button))
    return application


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    services: Services = app.state.services
    application = build_application(services.settings)
    application.bot_data["services"] = services
    await application.initialize()
    await application.start()
    app.state.telegram = application
    try:
        yield
    finally:
        await application.stop()
        await application.shutdown()


async def receive(request: Request) -> Response:
    """413 (too large), 403 (secret), 400 (not an Update), else the handlers run; 200."""
    try:
        raw = await read_body(request, tunables.TELEGRAM_MAX_BODY)
    except BodyRefused as exc:
        return refusal(exc)
    if not _secret_ok(request):
        return JSONResponse({"error": f"missing or wrong {SECRET_HEADER}"}, status_code=403)
    application: Application = request.app.state.telegram
    update = parse_update(raw, application.bot)
    if update is None:
        return JSONResponse({"error": "the body is not a Telegram Update"}, status_code=400)
    await application.process_update(update)
    return JSONResponse({"ok": True})


def _secret_ok(request: Request) -> bool:
    secret = reveal(request.app.state.services.settings.telegram_webhook_secret)
    given = request.headers.get(SECRET_HEADER, "")
    return bool(secret) and hmac.compare_digest(given.encode(), secret.encode())


def parse_update(raw: bytes, bot: Bot) -> Update | None:
    """The Update in `raw`; None when it is not UTF-8 JSON, not an object with an integer
    `update_id`, or a field does not have Telegram's shape."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(data, dict) or type(data.get("update_id")) is not int:
        return None
    try:
        return Update.de_json(data, bot)
    except (TypeError, ValueError, KeyError, AttributeError):
        return None


async def on_group_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command in a group: a pointer to the private chat, and nothing else (no task data)."""
    message = update.effective_message
    if message is None or not _addressed_to(message, context.bot):
        return
    await message.reply_text(PRIVATE_ONLY.format(username=context.bot.username))


def _addressed_to(message: Message, bot: Bot) -> bool:
    """Whether a group's command is for this bot: `/verb` or `/verb@this_bot`."""
    words = (message.text or "").split(maxsplit=1)
    _, _, mention = (words[0] if words else "").partition("@")
    return not mention or mention.lower() == (bot.username or "").lower()


async def on_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A new command in a private chat (the handler's filters see to both)."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None or not message.text:
        return
    text = message.text
    if text.split()[0].split("@")[0] == "/start" and len(text.split()) == 1:
        text = "help"  # Telegram's own /start when a chat with the bot opens
    result = await _run(context, update, user.id, text)
    if result.text and not result.duplicate:
        await message.reply_text(result.text)
    await dispatch_after(context.bot_data["services"], result)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A press of a card's button, in a private chat; elsewhere only a short answer."""
    query = update.callback_query
    parsed = parse_callback_data(query.data if query else None)
    if query is None or parsed is None:
        if query is not None:
            await query.answer()
        return
    if query.message is None or query.message.chat.type != ChatType.PRIVATE:
        await query.answer(text=BUTTONS_PRIVATE_ONLY)
        return
    result = await _run(context, update, query.from_user.id, " ".join(parsed))
    await query.answer(text=callback_answer_text(result.text) or None,
                       show_alert=not result.ok)
    await dispatch_after(context.bot_data["services"], result)


async def _run(context, update: Update, user_id: int, text: str) -> CommandResult:
    services: Services = context.bot_data["services"]
    request = CommandRequest("telegram", str(user_id), text, dedupe_key=str(update.update_id))
    result = await run_agent_command(services, request)
    return replace(result, text=fit_text(result.text))  # plain text: cut to Telegram's limit

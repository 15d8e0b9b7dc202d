"""`POST /telegram/webhook`: `/<verb> …` commands and inline-keyboard buttons.

The `X-Telegram-Bot-Api-Secret-Token` header must match `TELEGRAM_WEBHOOK_SECRET` (else 403).
The update is fed to a python-telegram-bot `Application` (no updater) that runs with the web
app. An `update_id` is recorded once in the database: a redelivered update does nothing.
"""

import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bot.core.services import Services
from bot.core.settings import Settings
from bot.webhooks.agents import dispatch_after, run_agent_command
from notifiers.grammar import CommandRequest, CommandResult
from notifiers.telegram import bot_api_url, parse_callback_data

PATH = "/telegram/webhook"
SECRET_HEADER = "x-telegram-bot-api-secret-token"
MAX_ALERT = 200  # answerCallbackQuery text limit


def build_router() -> APIRouter:
    """The Telegram route; the bot Application starts and stops with the web app."""
    router = APIRouter(lifespan=_lifespan)
    router.add_api_route(PATH, receive, methods=["POST"])
    return router


def build_application(settings: Settings) -> Application:
    """The bot Application (no updater: updates come from the webhook route)."""
    application = (
        Application.builder()
        .token(settings.telegram_bot_token or "")
        .base_url(bot_api_url(settings.telegram_api_base_url))
        .base_file_url(bot_api_url(settings.telegram_api_base_url, "file"))
        .updater(None)
        .build()
    )
    application.add_handler(MessageHandler(filters.COMMAND, on_command))
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


async def receive(request: Request) -> JSONResponse:
    secret = request.app.state.services.settings.telegram_webhook_secret or ""
    given = request.headers.get(SECRET_HEADER, "")
    if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
        return JSONResponse({"error": f"missing or wrong {SECRET_HEADER}"}, status_code=403)
    try:
        data = json.loads(await request.body())
    except ValueError:
        return JSONResponse({"error": "the body is not JSON"}, status_code=400)
    application: Application = request.app.state.telegram
    await application.process_update(Update.de_json(data, application.bot))
    return JSONResponse({"ok": True})


async def on_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
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
    query = update.callback_query
    parsed = parse_callback_data(query.data if query else None)
    if query is None or parsed is None:
        if query is not None:
            await query.answer()
        return
    result = await _run(context, update, query.from_user.id, " ".join(parsed))
    await query.answer(text=(result.text or None) and result.text[:MAX_ALERT],
                       show_alert=not result.ok)
    await dispatch_after(context.bot_data["services"], result)


async def _run(context, update: Update, user_id: int, text: str) -> CommandResult:
    services: Services = context.bot_data["services"]
    request = CommandRequest("telegram", str(user_id), text, dedupe_key=str(update.update_id))
    return await run_agent_command(services, request)

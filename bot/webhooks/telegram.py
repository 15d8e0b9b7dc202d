"""`POST /telegram/webhook`: `/<verb> …` commands and inline-keyboard buttons.

The body is read with a limit (413); the `X-Telegram-Bot-Api-Secret-Token` header must match
`TELEGRAM_WEBHOOK_SECRET` (else 403, nothing stored). The update is fed to a
python-telegram-bot `Application` (no updater) that runs with the web app. An `update_id` is
recorded once in the database: a redelivered update does nothing.

An update python-telegram-bot cannot read, or one the bot fails on, is kept as one FAILED
`inbound_events` row with its reason (listed by `opsbot events failed`) and answered 200, as
WhatsApp's unreadable bodies are: Telegram would otherwise redeliver it for hours, and then
drop it. A database that cannot store it, or that failed the command, gets 503: Telegram
delivers it again later (a command that did commit is not run twice).

Commands and buttons act only in a private chat with the bot: a group sees no task data, only
a pointer to the private chat. An edited message never runs a command (an edit of `/reply …`
would otherwise send the customer a second reply).
"""

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import replace

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from telegram import Bot, Message, Update
from telegram.constants import ChatType
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bot.core import tunables
from bot.core.services import Services
from bot.core.settings import Settings, reveal
from bot.webhooks.agents import dispatch_after, run_agent_command
from bot.webhooks.body import BodyRefused, read_body, refusal
from bot.whatsapp.payloads import body_digest
from notifiers.grammar import CommandRequest, CommandResult
from notifiers.telegram import (
    bot_api_url,
    callback_answer_text,
    fit_text,
    parse_callback_data,
)
from store.db import Database, is_unavailable
from store.errors import describe_error
from store.inbound import insert_events
from store.models import EventStatus

PATH = "/telegram/webhook"
PROVIDER = "telegram"
UNREADABLE = "unreadable"  # kind of a failed event python-telegram-bot could not read
UNHANDLED = "update"  # kind of a failed event the bot raised on
CANNOT_STORE = "cannot store right now; retry"
SECRET_HEADER = "x-telegram-bot-api-secret-token"
# New messages only (edits never run a command), and where: a private chat or a group.
NEW_COMMAND = filters.COMMAND & filters.UpdateType.MESSAGE
IN_PRIVATE = filters.ChatType.PRIVATE
IN_GROUP = filters.ChatType.GROUPS
PRIVATE_ONLY = "Commands work only in a private chat with me: https://t.me/{username}"
BUTTONS_PRIVATE_ONLY = "Buttons work only in a private chat with me."
REASON_LIMIT = 500
log = logging.getLogger(__name__)
# The errors of the update this request feeds: PTB hands a handler's error to `on_error`
# (awaited in the request's own task) and never to the caller of `process_update`.
_handler_errors: ContextVar[list[Exception]] = ContextVar("telegram_handler_errors")


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
    application.add_error_handler(on_error)
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
    """413 (too large), 403 (secret); else 200 once the handlers ran or the update is kept as
    a failed event; 503 when the database could not do either."""
    try:
        raw = await read_body(request, tunables.TELEGRAM_MAX_BODY)
    except BodyRefused as exc:
        return refusal(exc)
    if not _secret_ok(request):
        return JSONResponse({"error": f"missing or wrong {SECRET_HEADER}"}, status_code=403)
    application: Application = request.app.state.telegram
    db: Database = request.app.state.services.db
    try:
        update = read_update(raw, application.bot)
    except UnreadableUpdate as exc:
        return await _keep_failed(db, failed_row(raw, exc.update_id, UNREADABLE, str(exc)))
    error = await _process(application, update)
    if error is None:
        return JSONResponse({"ok": True})
    if is_unavailable(error):
        log.warning("telegram: update %s answered 503 (%s)", update.update_id,
                    describe_error(error))
        return JSONResponse({"error": CANNOT_STORE}, status_code=503)
    # A database error's traceback quotes the rows (customers' data): its one line is enough.
    log.error("telegram: the bot failed on update %s", update.update_id,
              exc_info=None if isinstance(error, DBAPIError) else error)
    reason = f"the bot failed on this update: {_one_line(describe_error(error))}"
    return await _keep_failed(db, failed_row(raw, update.update_id, UNHANDLED, reason))


async def _process(application: Application, update: Update) -> Exception | None:
    """Runs the handlers on `update`; the first error one of them raised, if any."""
    errors: list[Exception] = []
    token = _handler_errors.set(errors)
    try:
        await application.process_update(update)
    finally:
        _handler_errors.reset(token)
    return errors[0] if errors else None


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """PTB's error handler: hands a handler's error to the request that fed the update."""
    errors = _handler_errors.get(None)
    if errors is not None and context.error is not None:
        errors.append(context.error)
    else:  # not from a request (PTB's own tasks): only the log can tell
        log.error("telegram: the bot failed outside a request", exc_info=context.error)


async def _keep_failed(db: Database, row: dict) -> Response:
    """Commits `row` (a failed event) and answers 200; 503 when the database cannot."""
    try:
        await asyncio.to_thread(_insert, db, row)
    except Exception as exc:  # one line: a database error's traceback quotes the row
        log.error("telegram: an update was answered 503 (%s)", describe_error(exc))
        return JSONResponse({"error": CANNOT_STORE}, status_code=503)
    log.warning("telegram: update %s kept as a failed event: %s", row["provider_event_id"],
                row["error"])
    return JSONResponse({"ok": True, "failed": row["error"]})


def _insert(db: Database, row: dict) -> None:
    with db.transaction() as session:
        insert_events(session, rows=[row])  # a copy already stored is skipped


def failed_row(raw: bytes, update_id: int | None, kind: str, reason: str) -> dict:
    """The FAILED inbound_events row of `raw`, keyed by its `update_id` when readable (as a
    command's delivery is), else by the body's digest."""
    key = str(update_id) if update_id is not None else body_digest(raw)
    return {"provider": PROVIDER, "provider_event_id": key, "kind": kind,
            "contact_key": None, "occurred_at": None, "raw_body": raw,
            "status": EventStatus.FAILED, "error": reason}


def _secret_ok(request: Request) -> bool:
    secret = reveal(request.app.state.services.settings.telegram_webhook_secret)
    given = request.headers.get(SECRET_HEADER, "")
    return bool(secret) and hmac.compare_digest(given.encode(), secret.encode())


class UnreadableUpdate(Exception):
    """The body is not an Update we can read; `str()` is the reason (one line) and
    `update_id` the body's, when it has an integer one."""

    def __init__(self, reason: str, update_id: int | None = None) -> None:
        super().__init__(reason)
        self.update_id = update_id


def read_update(raw: bytes, bot: Bot) -> Update:
    """The Update in `raw`. Raises UnreadableUpdate when it is not UTF-8 JSON, not an object
    with an integer `update_id`, or python-telegram-bot cannot read a field."""
    data = _json_object(raw)
    update_id = data.get("update_id")
    if type(update_id) is not int:
        raise UnreadableUpdate("no integer update_id")
    try:
        return Update.de_json(data, bot)
    except Exception as exc:  # PTB fails on unexpected shapes in many, undocumented ways
        reason = f"python-telegram-bot cannot read it: {_one_line(describe_error(exc))}"
        raise UnreadableUpdate(reason, update_id) from None


def _json_object(raw: bytes) -> dict:
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UnreadableUpdate("not UTF-8 text") from None
    except RecursionError:
        raise UnreadableUpdate("JSON nested too deeply to read") from None
    except ValueError as exc:
        raise UnreadableUpdate(f"not JSON: {_one_line(str(exc))}") from None
    if not isinstance(data, dict):
        raise UnreadableUpdate("not a JSON object")
    return data


def _one_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:REASON_LIMIT]


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

"""`POST /slack/events`: slash command `/ops <verb> …`, card buttons and DMs to the bot.

The body is read with a limit (413) and its signature checked (401: missing, malformed, wrong,
or older than 5 minutes) before Bolt parses anything of it; then Bolt acks and the command
runs through the shared grammar. A delivery is identified by its trigger id (or event id):
Slack's retries of it are recorded once in the database and never act twice.
`SLACK_APP_TOKEN` set: Socket Mode is started with the app instead of waiting for HTTP.
"""

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from slack_bolt.adapter.starlette.async_handler import to_async_bolt_request, to_starlette_response
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from starlette.datastructures import Headers

from bot.core import tunables
from bot.core.services import Services
from bot.core.settings import Settings, reveal
from bot.webhooks.agents import dispatch_after, run_agent_command
from bot.webhooks.body import BodyRefused, read_body, refusal
from notifiers.grammar import CommandRequest, CommandResult
from notifiers.slack import escape_slack, parse_action_id, web_api_url

PATH = "/slack/events"
COMMAND = "/ops"
TIMESTAMP = re.compile(r"[0-9]{1,15}")  # whole seconds since the epoch, as Slack sends them
log = logging.getLogger(__name__)


class _Holder:
    """The app's services, handed to Bolt listeners (set when the app starts)."""

    services: Services | None = None


def build_router(settings: Settings) -> APIRouter:
    """The Slack route (and Socket Mode, when `SLACK_APP_TOKEN` is set)."""
    holder = _Holder()
    bolt = build_bolt_app(settings, holder)
    verifier = SignatureVerifier(reveal(settings.slack_signing_secret))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder.services = app.state.services
        async with _socket_mode(bolt, settings):
            yield

    async def events(request: Request) -> Response:
        try:
            raw = await read_body(request, tunables.SLACK_MAX_BODY)
        except BodyRefused as exc:
            return refusal(exc)
        if not signed_by_slack(verifier, raw, request.headers):
            return JSONResponse({"error": "invalid request"}, status_code=401)
        return await _dispatch(bolt, request, raw)

    router = APIRouter(lifespan=lifespan)
    router.add_api_route(PATH, events, methods=["POST"])
    return router


def signed_by_slack(verifier: SignatureVerifier, raw: bytes, headers: Headers) -> bool:
    """Whether Slack signed `raw` less than 5 minutes ago. False, never an exception, for a
    timestamp that is not whole seconds, a signature that is not ASCII or a body that is not
    UTF-8 (slack_sdk's check would raise on each)."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not TIMESTAMP.fullmatch(timestamp) or not signature.isascii():
        return False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return verifier.is_valid(text, timestamp, signature)


async def _dispatch(bolt: AsyncApp, request: Request, raw: bytes) -> Response:
    """Hands a signed body to Bolt (which checks the signature again, and acks)."""
    try:
        bolt_request = to_async_bolt_request(request, raw)
    except ValueError:  # signed, yet neither a form nor JSON: not something Slack sends
        return JSONResponse({"error": "the body is neither a form nor JSON"}, status_code=400)
    return to_starlette_response(await bolt.async_dispatch(bolt_request))


def build_bolt_app(settings: Settings, holder: _Holder) -> AsyncApp:
    """The Bolt app: its Web API client points at `SLACK_API_BASE_URL` when set."""
    bolt = AsyncApp(  # the client carries the bot token
        signing_secret=reveal(settings.slack_signing_secret),
        client=AsyncWebClient(token=reveal(settings.slack_bot_token),
                              base_url=web_api_url(settings.slack_api_base_url)),
    )
    for register in (_listen_to_commands, _listen_to_buttons, _listen_to_direct_messages):
        register(bolt, holder)
    return bolt


def _listen_to_commands(bolt: AsyncApp, holder: _Holder) -> None:
    @bolt.command(COMMAND)
    async def on_command(ack, body, request, respond) -> None:
        key = body.get("trigger_id") or _digest(request.raw_body)
        running = asyncio.ensure_future(_run(holder, body["user_id"], body.get("text") or "", key))
        done, _ = await asyncio.wait({running}, timeout=tunables.ANSWER_IN_ACK_WITHIN)
        if running not in done:  # slow database: ack now (Slack waits 3 s), answer later
            await ack()
            result = await running
            if result.text and not result.duplicate:
                await respond(text=result.text, response_type="ephemeral")
        elif running.result().duplicate:  # Slack retried a delivery we already answered
            await ack()
        else:
            await ack(text=running.result().text, response_type="ephemeral")
        await dispatch_after(holder.services, running.result())


def _listen_to_buttons(bolt: AsyncApp, holder: _Holder) -> None:
    @bolt.action(re.compile(r"^opsbot:"))
    async def on_button(ack, body, action, respond, request) -> None:
        await ack()
        parsed = parse_action_id(action.get("action_id", ""))
        if parsed is None:
            return
        key = body.get("trigger_id") or _digest(request.raw_body)
        result = await _run(holder, body["user"]["id"], " ".join(parsed), key)
        if result.text and not result.duplicate:
            await respond(text=result.text, response_type="ephemeral", replace_original=False)
        await dispatch_after(holder.services, result)


def _listen_to_direct_messages(bolt: AsyncApp, holder: _Holder) -> None:
    @bolt.event("message")
    async def on_direct_message(event, body, say) -> None:
        if event.get("channel_type") != "im" or event.get("bot_id") or event.get("subtype"):
            return
        key = body.get("event_id") or f"{event.get('channel')}:{event.get('ts')}"
        result = await _run(holder, event["user"], event.get("text") or "", key)
        if result.text and not result.duplicate:
            await say(text=result.text)
        await dispatch_after(holder.services, result)


async def _run(holder: _Holder, user_id: str, text: str, key: str) -> CommandResult:
    """Runs the command; its answer comes back escaped for Slack (it may quote a customer)."""
    if holder.services is None:
        raise RuntimeError("the Slack router was used before the app started")
    request = CommandRequest("slack", user_id, text, dedupe_key=key)
    result = await run_agent_command(holder.services, request)
    return replace(result, text=escape_slack(result.text))


def _digest(raw: str | bytes) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return "body:" + hashlib.sha256(data).hexdigest()


@asynccontextmanager
async def _socket_mode(bolt: AsyncApp, settings: Settings) -> AsyncIterator[None]:
    if not settings.slack_app_token:
        yield
        return
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    handler = AsyncSocketModeHandler(bolt, reveal(settings.slack_app_token))
    await handler.connect_async()
    log.info("Slack Socket Mode connected")
    try:
        yield
    finally:
        await handler.close_async()

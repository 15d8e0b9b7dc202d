"""Telegram updates the bot cannot read or act on are kept as failed events and answered 200,
over real HTTP with the webhook secret; a wrong secret still stores nothing."""

import hashlib
import json

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.webhooks import telegram
from store.models import EventStatus, InboundEvent
from tests.bot.fixtures import TELEGRAM_SECRET
from tests.bot.webhooks.http_kit import errors, server_log
from tests.bot.world import running_world

TINA = 444
PRIVATE_CHAT = {"id": TINA, "type": "private", "first_name": "Tina"}
TINA_USER = {"id": TINA, "is_bot": False, "first_name": "Tina"}
DATE = 1767225600  # 2026-01-01T00:00:00Z


@pytest.fixture
def world(db, redis_url, tmp_path):
    with running_world(db, redis_url, tmp_path) as built:
        yield built


def post(world, raw: bytes, secret: str | None = TELEGRAM_SECRET) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return httpx.post(world.send.base_url + telegram.PATH, content=raw, headers=headers,
                      timeout=10)


def stored(world) -> list[InboundEvent]:
    with world.services.db.transaction() as session:
        query = select(InboundEvent).where(InboundEvent.provider == "telegram")
        return list(session.scalars(query.order_by(InboundEvent.id)))


def message(**fields) -> dict:
    """A private message's fields as the Bot API sends them, with `fields` over them."""
    return {"message_id": 7, "date": DATE, "chat": PRIVATE_CHAT, "from": TINA_USER,
            "text": "/tasks", "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
            **fields}


def replied_to(depth: int) -> dict:
    """A message replying to a message replying to … `depth` times (Telegram sends one)."""
    inner = message(text="hola", entities=[])
    for _ in range(depth):
        inner = message(text="hola", entities=[], reply_to_message=inner)
    return inner


def digest(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def dumped(update) -> bytes:
    return json.dumps(update).encode()


CHAT_AS_TEXT = dumped({"update_id": 501, "message": message(chat="private")})
DATE_OUT_OF_RANGE = dumped({"update_id": 502, "message": message(date=10**20)})
DEEP_REPLIES = dumped({"update_id": 503, "message": replied_to(600)})
A_LIST = dumped([{"update_id": 504}])
NOT_JSON = b'{"update_id": 505,'
NOT_UTF8 = b"\xff\xfe\x00\x00{"
NESTED_ARRAYS = b"[" * 100_000
TEXT_UPDATE_ID = dumped({"update_id": "506", "message": message()})


@pytest.mark.parametrize(("raw", "key", "reason"), [
    (CHAT_AS_TEXT, "501", "python-telegram-bot cannot read it"),
    (DATE_OUT_OF_RANGE, "502", "python-telegram-bot cannot read it"),
    (DEEP_REPLIES, "503", "python-telegram-bot cannot read it"),
    (A_LIST, digest(A_LIST), "not a JSON object"),
    (NOT_JSON, digest(NOT_JSON), "not JSON"),
    (NOT_UTF8, digest(NOT_UTF8), "not UTF-8"),
    (NESTED_ARRAYS, digest(NESTED_ARRAYS), "nested too deeply"),
    (TEXT_UPDATE_ID, digest(TEXT_UPDATE_ID), "no integer update_id"),
], ids=["chat-as-text", "date-out-of-range", "deep-replies", "a-list", "not-json",
        "not-utf8", "nested-arrays", "text-update-id"])
def test_an_unreadable_update_is_kept_failed_and_answered_200(world, caplog, raw, key, reason):
    with server_log(caplog):
        response = post(world, raw)
        again = post(world, raw)  # a copy is ignored by its key
    assert (response.status_code, again.status_code) == (200, 200), response.text
    [event] = stored(world)
    assert (event.provider_event_id, event.kind, event.status) == (
        key, "unreadable", EventStatus.FAILED)
    assert reason in event.error and "Traceback" not in event.error
    assert event.raw_body == raw
    assert errors(caplog) == []
    assert world.telegram.calls("sendMessage") == []


@pytest.mark.parametrize("secret", [None, "", "wrong"])
def test_a_wrong_or_missing_secret_stores_nothing(world, secret):
    assert post(world, CHAT_AS_TEXT, secret).status_code == 403
    assert stored(world) == []


def press_without_sender() -> bytes:
    """A button press whose `from` is missing (the Bot API always sends it)."""
    query = {"id": "9", "chat_instance": "444", "data": "accept:T-1",
             "message": message(text="card", entities=[])}
    return dumped({"update_id": 601, "callback_query": query})


def test_an_update_the_bot_fails_on_is_kept_failed_and_answered_200(world):
    raw = press_without_sender()
    response = post(world, raw)
    assert response.status_code == 200, response.text
    [event] = stored(world)
    assert (event.provider_event_id, event.kind, event.status) == (
        "601", "update", EventStatus.FAILED)
    assert event.error.startswith("the bot failed on this update: AttributeError")


def test_a_command_that_raises_is_kept_failed(world, monkeypatch):
    async def broken(services, request):
        raise RuntimeError("boom")

    monkeypatch.setattr(telegram, "run_agent_command", broken)
    response = post(world, dumped({"update_id": 603, "message": message()}))
    assert response.status_code == 200, response.text
    [event] = stored(world)
    assert (event.provider_event_id, event.status) == ("603", EventStatus.FAILED)
    assert event.error == "the bot failed on this update: RuntimeError: boom"


def test_a_database_that_cannot_store_answers_503_for_a_redelivery(world, monkeypatch):
    async def unavailable(services, request):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(telegram, "run_agent_command", unavailable)
    response = post(world, dumped({"update_id": 604, "message": message()}))
    assert response.status_code == 503
    assert stored(world) == []

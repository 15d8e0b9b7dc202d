"""FakeTelegram answers the real python-telegram-bot 22 client over HTTP."""

import asyncio

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, InvalidToken, RetryAfter
from telegram.ext import Application

from sandbox.telegram import FakeTelegram

TOKEN = "123:TEST"
AGENT_CHAT = 123456789
KEYBOARD = InlineKeyboardMarkup(
    [
        [
            InlineKeyboardButton("Accept", callback_data="accept:12"),
            InlineKeyboardButton("Decline", callback_data="decline:12"),
        ]
    ]
)


@pytest.fixture
def telegram():
    with FakeTelegram(token=TOKEN) as fake:
        yield fake


def run(coro):
    return asyncio.run(coro)


def test_send_edit_answer_and_webhook_with_a_real_bot(telegram):
    async def scenario():
        async with Bot(TOKEN, base_url=telegram.url + "/bot") as bot:
            sent = await bot.send_message(AGENT_CHAT, "T-12 Cambio de envío", reply_markup=KEYBOARD)
            other = await bot.send_message(AGENT_CHAT, "T-13")
            edited = await bot.edit_message_text(
                "T-12 accepted by Ana", AGENT_CHAT, sent.message_id
            )
            answered = await bot.answer_callback_query("cbq-1", text="Accepted")
            hooked = await bot.set_webhook(
                "https://ops.example.test/telegram/webhook", secret_token="s3cret-TOKEN_1"
            )
            info = await bot.get_webhook_info()
            deleted = await bot.delete_webhook()
            return bot.id, sent, other, edited, answered, hooked, info, deleted

    bot_id, sent, other, edited, answered, hooked, info, deleted = run(scenario())
    assert bot_id == 123 and sent.from_user.is_bot
    assert (sent.chat.id, sent.chat.type, sent.message_id, other.message_id) == (
        AGENT_CHAT,
        "private",
        1,
        2,
    )
    assert sent.reply_markup == KEYBOARD and sent.text == "T-12 Cambio de envío"
    assert edited.text == "T-12 accepted by Ana" and edited.reply_markup is None
    assert answered and hooked and deleted
    assert info.url == "https://ops.example.test/telegram/webhook"
    assert telegram.webhook == {}
    assert [r.name for r in telegram.requests][:2] == ["getMe", "sendMessage"]


def test_parameters_are_parsed_from_ptb_form_encoding(telegram):
    async def scenario():
        async with Bot(TOKEN, base_url=telegram.base_url) as bot:
            sent = await bot.send_message(AGENT_CHAT, "42", reply_markup=KEYBOARD)
            await bot.edit_message_reply_markup(AGENT_CHAT, sent.message_id, reply_markup=None)
            await bot.set_webhook("https://ops.example.test/hook", secret_token="abc")

    run(scenario())
    send = telegram.calls("sendMessage")[0]
    assert send.headers["content-type"] == "application/x-www-form-urlencoded"
    assert isinstance(send.form["reply_markup"], str)  # JSON inside a form field
    assert send.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "accept:12"
    assert (send.params["chat_id"], send.params["text"]) == (AGENT_CHAT, "42")
    assert telegram.sent_messages(AGENT_CHAT)[0]["text"] == "42"
    assert telegram.message(AGENT_CHAT, 1).get("reply_markup") is None
    assert telegram.calls("setWebhook")[0].params["secret_token"] == "abc"


def test_application_builder_with_base_url(telegram):
    async def scenario():
        app = Application.builder().token(TOKEN).base_url(telegram.base_url).updater(None).build()
        async with app:
            return (await app.bot.send_message(AGENT_CHAT, "hi")).message_id

    assert run(scenario()) == 1
    assert telegram.calls("getMe")


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
def test_rate_limit_not_modified_and_wrong_token(telegram):
    async def scenario():
        async with Bot(TOKEN, base_url=telegram.base_url) as bot:
            telegram.fail_next(1, status=429, retry_after=7, match="sendMessage")
            with pytest.raises(RetryAfter) as limited:
                await bot.send_message(AGENT_CHAT, "x")
            sent = await bot.send_message(AGENT_CHAT, "same")
            with pytest.raises(BadRequest, match="not modified"):
                await bot.edit_message_text("same", AGENT_CHAT, sent.message_id)
            with pytest.raises(BadRequest, match="not found"):
                await bot.edit_message_text("x", AGENT_CHAT, 999)
        with pytest.raises(InvalidToken):
            async with Bot("999:WRONG", base_url=telegram.base_url):
                pass
        return str(limited.value)

    assert "Retry in 7" in run(scenario())  # PTB read parameters.retry_after
    assert [r.status for r in telegram.calls("sendMessage")] == [429, 200]

"""Telegram commands run only from a new message in a private chat with the bot.

Updates are built as the Bot API sends them (Update: message | edited_message | channel_post
| callback_query; Chat.type: private | group | supergroup | channel), over HTTP with the
webhook secret, against the fake Telegram API.
"""

import itertools
import time

import pytest

from bot.webhooks.telegram import BUTTONS_PRIVATE_ONLY
from sandbox.inbound import telegram_callback, telegram_command
from store.models import TaskStatus
from tests.bot.world import running_world

TINA = 444
GROUP = {"id": -1001234567890, "type": "supergroup", "title": "Logística"}
POINTER = "Commands work only in a private chat with me: https://t.me/opsbot_test_bot"
_updates = itertools.count(5000)


@pytest.fixture
def world(db, redis_url, tmp_path):
    with running_world(db, redis_url, tmp_path) as built:
        yield built


def send(world, update: dict) -> None:
    response = world.send.telegram(update)
    assert response.status_code == 200, response.text


def private_command(text: str) -> dict:
    return telegram_command(user_id=TINA, first_name="Tina", text=text,
                            update_id=next(_updates))


def in_chat(update: dict, chat: dict) -> dict:
    """`update` with its message sent in `chat` instead."""
    return {**update, "message": {**update["message"], "chat": chat}}


def edited(update: dict, text: str) -> dict:
    """The edited_message update Telegram sends when the message of `update` is edited."""
    message = {**update["message"], "text": text, "edit_date": int(time.time())}
    message["entities"] = [{"type": "bot_command", "offset": 0,
                            "length": len(text.split(maxsplit=1)[0])}]
    return {"update_id": next(_updates), "edited_message": message}


def task_unchanged(world, number: int) -> None:
    assert world.task(number).status == TaskStatus.ASSIGNED
    assert {action for action, _ in world.actions(number)} & {"accept", "note", "reply"} == set()


@pytest.mark.parametrize("chat_type", ["group", "supergroup"])
@pytest.mark.parametrize("verb", ["accept {n}", "show {n}", "tasks open", "note {n} hola"])
def test_a_command_in_a_group_only_points_to_the_private_chat(world, chat_type, verb):
    number = world.assigned_task("tina")
    sent_before = len(world.telegram.calls("sendMessage"))
    group = {**GROUP, "type": chat_type}
    send(world, in_chat(private_command("/" + verb.format(n=number)), group))
    assert [m["text"] for m in world.telegram.sent_messages(group["id"])] == [POINTER]
    assert len(world.telegram.calls("sendMessage")) == sent_before + 1  # nothing else, anywhere
    task_unchanged(world, number)
    world.work()
    assert world.outbox("reply") == []


@pytest.mark.parametrize(("command", "answered"), [("/tasks@opsbot_test_bot", True),
                                                   ("/tasks@OpsBot_Test_Bot", True),
                                                   ("/tasks@another_bot", False)])
def test_a_group_command_for_another_bot_gets_no_answer(world, command, answered):
    send(world, in_chat(private_command(command), GROUP))
    expected = [POINTER] if answered else []
    assert [m["text"] for m in world.telegram.sent_messages(GROUP["id"])] == expected


def test_a_command_in_a_channel_post_does_nothing(world):
    number = world.assigned_task("tina")
    message = private_command(f"/accept {number}")["message"]
    post = {k: v for k, v in message.items() if k != "from"}
    channel = {"id": -1009876543210, "type": "channel", "title": "Avisos"}
    sent_before = len(world.telegram.calls("sendMessage"))
    send(world, {"update_id": next(_updates), "channel_post": {**post, "chat": channel}})
    assert len(world.telegram.calls("sendMessage")) == sent_before
    task_unchanged(world, number)


def test_an_edited_reply_does_not_send_a_second_reply(world):
    number = world.assigned_task("tina")
    send(world, private_command(f"/accept {number}"))
    original = private_command(f"/reply {number} Lo enviamos hoy")
    send(world, original)
    answers = len(world.telegram.sent_messages(TINA))
    send(world, edited(original, f"/reply {number} Lo enviamos mañana"))
    world.work()
    assert [row.payload["text"] for row in world.outbox("reply")] == ["Lo enviamos hoy"]
    assert world.customer_texts() == ["Lo enviamos hoy"]
    assert [a for a, _ in world.actions(number)].count("reply") == 1
    assert len(world.telegram.sent_messages(TINA)) == answers  # the edit got no answer


def test_an_edit_that_turns_a_message_into_a_command_does_nothing(world):
    number = world.assigned_task("tina")
    original = private_command("hola")
    original["message"].pop("entities")
    sent_before = len(world.telegram.calls("sendMessage"))
    send(world, original)
    send(world, edited(original, f"/accept {number}"))
    assert len(world.telegram.calls("sendMessage")) == sent_before
    task_unchanged(world, number)


def test_a_button_pressed_in_a_group_only_gets_a_short_answer(world):
    number = world.assigned_task("tina")
    [card] = [m for c, m in world.telegram.posted() if c == TINA and "reply_markup" in m]
    in_group = {**card, "chat": GROUP}
    data = f"accept:T-{number}"
    update = telegram_callback(user_id=TINA, first_name="Tina", message=in_group, data=data,
                               update_id=next(_updates))
    send(world, update)
    [answered] = world.telegram.calls("answerCallbackQuery")
    assert answered.params["text"] == BUTTONS_PRIVATE_ONLY
    task_unchanged(world, number)
    assert world.telegram.message(TINA, card["message_id"]) == card  # the card is as it was


def test_a_command_in_the_private_chat_still_runs(world):
    number = world.assigned_task("tina")
    send(world, private_command(f"/accept {number}"))
    assert world.task(number).status == TaskStatus.ACCEPTED
    assert world.telegram.sent_messages(TINA)[-1]["text"].startswith(f"T-{number} accepted")

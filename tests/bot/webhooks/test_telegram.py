"""Agents on Telegram, through the running app over HTTP with the webhook secret."""

import itertools

import pytest

from sandbox.inbound import telegram_callback, telegram_command
from store.models import TaskStatus
from tests.bot.world import running_world

TINA, MARTA = 444, 333
_updates = itertools.count(1000)


@pytest.fixture
def world(db, redis_url, tmp_path):
    with running_world(db, redis_url, tmp_path) as built:
        yield built


def command(world, user, text, update_id=None):
    update = telegram_command(
        user_id=user, first_name=str(user), text=text, update_id=update_id or next(_updates)
    )
    response = world.send.telegram(update)
    assert response.status_code == 200, response.text
    return update


def replies(world, user):
    return [m["text"] for m in world.telegram.sent_messages(user) if "reply_markup" not in m]


def last_reply(world, user) -> str:
    return replies(world, user)[-1]


def card_of(world, user):
    [(_, message)] = [
        (c, m) for c, m in world.telegram.posted() if c == user and "reply_markup" in m
    ]
    return message


def press(world, user, verb, message):
    keyboard = message["reply_markup"]["inline_keyboard"][0]
    data = next(b["callback_data"] for b in keyboard if b["callback_data"].startswith(verb))
    update = telegram_callback(
        user_id=user, first_name=str(user), message=message, data=data, update_id=next(_updates)
    )
    response = world.send.telegram(update)
    assert response.status_code == 200, response.text


def test_assigned_card_accept_by_button_updates_the_card(world):
    number = world.assigned_task("tina")
    card = card_of(world, TINA)
    assert f"<b>New task T-{number}: Cambio de envío</b>" in card["text"]
    press(world, TINA, "accept", card)
    [answered] = world.telegram.calls("answerCallbackQuery")
    assert answered.params["text"].startswith(f"T-{number} accepted")
    assert world.task(number).status == TaskStatus.ACCEPTED
    assert ("accept", "agent:tina") in world.actions(number)
    world.work()
    updated = world.telegram.message(TINA, card["message_id"])
    assert "Accepted by Tina Telegram at" in updated["text"]
    labels = [b["callback_data"] for b in updated["reply_markup"]["inline_keyboard"][0]]
    assert labels == [f"start:T-{number}", f"close:T-{number}"]


def test_commands_through_the_working_life(world):
    number = world.assigned_task("tina")
    command(world, TINA, f"/accept {number}")
    assert last_reply(world, TINA).startswith(f"T-{number} accepted")
    world.work()
    assert (
        "Accepted by Tina"
        in world.telegram.message(TINA, card_of(world, TINA)["message_id"])["text"]
    )
    command(world, TINA, f"/note {number} revisado")
    command(world, TINA, f"/reply T-{number} Lo enviamos hoy")
    command(world, TINA, f"/wait {number}")
    command(world, TINA, f"/start {number}")
    command(world, TINA, f"/close {number}")
    assert last_reply(world, TINA).startswith(f"T-{number} closed")
    world.work()
    assert world.customer_texts() == [
        "Lo enviamos hoy",
        f"Hola Carmen, cerramos la solicitud #{number}.",
    ]
    verbs = ("accept", "note", "reply", "wait", "start", "close")
    assert [a for a, _ in world.actions(number) if a in verbs] == list(verbs)


def test_decline_by_button_offers_the_next_candidate(world):
    number = world.assigned_task("tina")
    press(world, TINA, "decline", card_of(world, TINA))
    task = world.task(number)
    assert task.assignee_id not in (None, "tina") and task.declined_by == ["tina"]
    world.work()
    offers = [row for row in world.outbox("assigned") if row.agent_id == task.assignee_id]
    assert [row.status for row in offers] == ["sent"]


def test_reassign_by_supervisor_and_refused_for_an_agent(world):
    number = world.assigned_task("ana")
    command(world, TINA, f"/reassign {number} tina")
    assert "supervisor" in last_reply(world, TINA)
    assert world.task(number).assignee_id == "ana"
    command(world, MARTA, f"/reassign {number} tina")
    assert last_reply(world, MARTA).startswith(f"T-{number} reassigned to Tina Telegram")
    assert world.task(number).assignee_id == "tina"


def test_unknown_user_and_bad_input(world):
    command(world, 999, "/tasks")
    assert "do not know you" in last_reply(world, 999)
    command(world, TINA, "/accept")
    assert last_reply(world, TINA) == "Usage: accept T-12"
    command(world, TINA, "/frobnicate")
    assert last_reply(world, TINA).startswith("I do not know 'frobnicate'")
    command(world, TINA, "/start")
    assert last_reply(world, TINA).startswith("Commands:")


def test_a_repeated_update_changes_nothing(world):
    number = world.assigned_task("tina")
    update = command(world, TINA, f"/note {number} solo una vez")
    world.send.telegram(update)
    assert [a for a, _ in world.actions(number)].count("note") == 1
    assert len(replies(world, TINA)) == 1


def test_a_wrong_or_missing_secret_is_refused(world):
    update = telegram_command(user_id=TINA, first_name="Tina", text="/tasks", update_id=1)
    world.send.telegram_secret = "wrong"
    assert world.send.telegram(update).status_code == 403
    world.send.telegram_secret = ""
    assert world.send.telegram(update).status_code == 403
    assert replies(world, TINA) == []

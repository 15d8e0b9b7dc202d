"""Agents on Slack, through the running app over HTTP with really signed requests."""

import time

import pytest
from sqlalchemy import select

from bot.core import tunables
from sandbox.inbound import slack_button, slack_command
from store.models import Contact, TaskStatus
from tests.bot.world import running_world
from tests.notifiers.helpers import make_task


@pytest.fixture
def world(db, redis_url, tmp_path):
    with running_world(db, redis_url, tmp_path) as built:
        yield built


def ops(world, user, text, **kwargs):
    fields = slack_command(user_id=user, text=text, response_url=world.slack.response_url())
    return world.send.slack_form(fields, **kwargs)


def answer(response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["text"]


def card_of(world, user):
    channel = world.slack.dm_channel(user)
    [(_, message)] = [(c, m) for c, m in world.slack.posted() if c == channel]
    return channel, message


def click(world, user, verb, channel, message):
    actions = next(b for b in message["blocks"] if b["type"] == "actions")["elements"]
    action = next(a for a in actions if a["action_id"].split(":")[1] == verb)
    payload = slack_button(
        user_id=user,
        channel=channel,
        message=message,
        action=action,
        response_url=world.slack.response_url(),
    )
    response = world.send.slack_action(payload)
    assert response.status_code == 200, response.text
    return payload


def test_assigned_card_accept_by_button_updates_the_card(world):
    number = world.assigned_task("ana")
    channel, card = card_of(world, "U0ANA")
    assert f"New task T-{number}" in card["text"]
    click(world, "U0ANA", "accept", channel, card)
    world.slack.wait_for(lambda requests: world.slack.responses())
    assert world.task(number).status == TaskStatus.ACCEPTED
    assert ("accept", "agent:ana") in world.actions(number)
    world.work()
    _, updated = card_of(world, "U0ANA")
    assert "Accepted by Ana García at" in updated["text"]
    buttons = next(b for b in updated["blocks"] if b["type"] == "actions")["elements"]
    assert [b["action_id"] for b in buttons] == [
        f"opsbot:start:T-{number}",
        f"opsbot:close:T-{number}",
    ]


def test_accept_by_command_then_the_whole_working_life(world):
    number = world.assigned_task("ana")
    assert answer(ops(world, "U0ANA", f"accept T-{number}")).startswith(f"T-{number} accepted")
    world.work()
    assert "Accepted by Ana García" in card_of(world, "U0ANA")[1]["text"]
    assert (
        answer(ops(world, "U0ANA", f"note {number} llamé al transportista"))
        == f"Note added to T-{number}."
    )
    assert answer(ops(world, "U0ANA", f"reply {number} Llega mañana por la mañana")).startswith(
        "Sent to the customer"
    )
    assert answer(ops(world, "U0ANA", f"wait {number}")).startswith(f"T-{number} waiting")
    assert answer(ops(world, "U0ANA", f"start {number}")).startswith(f"T-{number} started")
    assert answer(ops(world, "U0ANA", f"close {number} cambiado")).startswith(f"T-{number} closed")
    world.work()
    assert world.customer_texts() == [
        "Llega mañana por la mañana",
        f"Hola Carmen, cerramos la solicitud #{number}.",
    ]
    verbs = ("accept", "note", "reply", "wait", "start", "close")
    assert [a for a, _ in world.actions(number) if a in verbs] == list(verbs)
    assert world.task(number).status == TaskStatus.CLOSED


def test_decline_offers_the_task_to_the_next_candidate(world):
    number = world.assigned_task("ana")
    text = answer(ops(world, "U0ANA", f"decline {number} no es mi zona"))
    task = world.task(number)
    assert task.assignee_id not in (None, "ana") and task.declined_by == ["ana"]
    assert "Offered to" in text
    world.work()
    [offer] = [row for row in world.outbox("assigned") if row.agent_id == task.assignee_id]
    assert offer.status == "sent"
    _, ana_card = card_of(world, "U0ANA")
    assert "Declined by Ana García" in ana_card["text"]
    assert not [b for b in ana_card["blocks"] if b["type"] == "actions"]


def test_reassign_needs_the_supervisor(world):
    number = world.assigned_task("ana")
    refused = answer(ops(world, "U0PABLO", f"reassign {number} pablo"))
    assert "supervisor" in refused and world.task(number).assignee_id == "ana"
    assert ("denied", "agent:pablo") in world.actions(number)
    allowed = answer(ops(world, "U0MARTA", f"reassign {number} pablo"))
    assert allowed.startswith(f"T-{number} reassigned to Pablo Ruiz")
    assert world.task(number).assignee_id == "pablo"
    world.work()
    assert any(
        f"New task T-{number}" in m["text"]
        for m in world.slack.sent_messages(world.slack.dm_channel("U0PABLO"))
    )


def test_unknown_user_is_refused(world):
    text = answer(ops(world, "U0NOBODY", "tasks"))
    assert "do not know you" in text and "U0NOBODY" in text


def test_bad_input_gets_a_helpful_answer(world):
    assert answer(ops(world, "U0ANA", "accept")) == "Usage: accept T-12"
    assert answer(ops(world, "U0ANA", "accept T-99999")) == "There is no task T-99999"
    assert answer(ops(world, "U0ANA", "frobnicate")).startswith("I do not know 'frobnicate'")


def test_a_replayed_slack_retry_changes_nothing(world):
    number = world.assigned_task("ana")
    fields = slack_command(
        user_id="U0ANA", text=f"note {number} una vez", response_url=world.slack.response_url()
    )
    first = world.send.slack_form(fields)
    again = world.send.slack_form(fields, retry_num=1)
    assert first.status_code == again.status_code == 200
    assert [a for a, _ in world.actions(number)].count("note") == 1


def test_an_expired_or_bad_signature_is_refused(world):
    fields = slack_command(user_id="U0ANA", text="tasks", response_url=world.slack.response_url())
    expired = world.send.slack_form(fields, timestamp=int(time.time()) - 6 * 60)
    assert expired.status_code == 401
    world.send.slack_secret = "wrong-secret"
    assert world.send.slack_form(fields).status_code == 401


def post_event(world, event_id, event, retry_num=None):
    import json

    import httpx

    from sandbox.inbound import slack_signature

    raw = json.dumps(
        {
            "type": "event_callback",
            "team_id": "T0",
            "api_app_id": "A0",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": event,
        }
    ).encode()
    ts = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": slack_signature(raw, world.send.slack_secret, ts),
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
    return httpx.post(world.send.base_url + "/slack/events", content=raw, headers=headers)


def test_a_direct_message_to_the_bot_is_a_command_and_retries_act_once(world):
    number = world.assigned_task("ana")
    channel = world.slack.dm_channel("U0ANA")
    event = {
        "type": "message",
        "channel_type": "im",
        "channel": channel,
        "user": "U0ANA",
        "text": f"note {number} por DM",
        "ts": f"{time.time():.6f}",
    }
    assert post_event(world, "Ev001", event).status_code == 200
    world.slack.wait_for(
        lambda _: [
            m for m in world.slack.sent_messages(channel) if m["text"].startswith("Note added")
        ]
    )
    assert post_event(world, "Ev001", event, retry_num=1).status_code == 200
    time.sleep(0.3)  # a second answer would have been posted by now
    notes = [m for m in world.slack.sent_messages(channel) if m["text"].startswith("Note added")]
    assert len(notes) == 1
    assert [a for a, _ in world.actions(number)].count("note") == 1


def test_a_slow_command_is_acked_at_once_and_answered_by_response_url(world, monkeypatch):
    monkeypatch.setattr(tunables, "ANSWER_IN_ACK_WITHIN", 0)
    number = world.assigned_task("ana")
    response = ops(world, "U0ANA", f"accept {number}")
    assert response.status_code == 200 and not response.content
    [answer_] = world.slack.wait_for(lambda _: world.slack.responses())
    assert answer_.json["text"].startswith(f"T-{number} accepted")
    assert world.task(number).status == TaskStatus.ACCEPTED


def test_an_answer_quoting_a_customer_cannot_mention_or_link(world):
    """`show` quotes the customer's name: Slack gets it escaped, not as a live mention."""
    number = world.assigned_task("ana")
    with world.services.db.transaction() as session:
        contact = session.scalars(select(Contact)).one()
        contact.name = "<!channel> <https://evil.example|Click me>"
    text = answer(ops(world, "U0ANA", f"show {number}"))
    assert "<!channel>" not in text and "<https://" not in text
    assert "&lt;!channel&gt; &lt;https://evil.example|Click me&gt;" in text


def test_an_agent_of_another_team_cannot_reply_note_or_look(world):
    """The attack of issue 13: an agent of sales replied to the customer of an unassigned
    logistics task and read it. Over real HTTP, each is refused and nothing is queued."""
    with world.services.db.transaction() as session:
        number = make_task(session).id  # logistics, unassigned
    for text in (f"reply {number} hola, soy de ventas", f"note {number} mirando",
                 f"show {number}", f"accept {number}"):
        said = answer(ops(world, "U0SARA", text))
        assert said == f"T-{number} is not a task of your teams", text
    assert "Carmen" not in answer(ops(world, "U0SARA", "tasks open"))
    assert world.outbox("reply") == []
    assert [a for a, _ in world.actions(number)] == ["created"] + ["denied"] * 4


def test_a_reply_longer_than_whatsapp_allows_is_refused_with_the_limit(world):
    number = world.assigned_task("ana")
    said = answer(ops(world, "U0ANA", f"reply {number} " + "x" * 5000))
    assert "4,096" in said
    assert world.outbox("reply") == []

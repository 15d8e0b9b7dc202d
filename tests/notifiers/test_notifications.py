"""The channel-neutral notification and its Slack and Telegram renderings."""

import pytest

from notifiers.notifications import (
    Notification,
    NotificationKind,
    build_notification,
    with_outcome,
)
from notifiers.slack import parse_action_id, render_slack
from notifiers.telegram import callback_data, parse_callback_data, render_telegram
from store.models import TaskStatus
from tests.notifiers.helpers import config, make_task

CONFIG = config()


@pytest.fixture
def task(db):
    with db.transaction() as session:
        yield make_task(session, assignee="ana")


def test_assigned_card_fields_and_buttons(task):
    card = build_notification("assigned", config=CONFIG, task=task)
    assert card.title == "New task T-1: Cambio de envío"
    assert dict(card.fields)["Customer"] == "Carmen Ruiz"
    assert [b.verb for b in card.buttons] == ["accept", "decline"]
    assert Notification.from_dict(card.as_dict()) == card


@pytest.mark.parametrize(
    ("kind", "details", "expected"),
    [
        ("follow_up", {"text": "¿Y mi paquete?"}, "The customer wrote on T-1"),
        ("reminder", {"percent": 80, "kind": "first_response"}, "Reminder T-1"),
        ("breach", {"step": "notify_supervisor", "agent": "ana"}, "SLA breached on T-1"),
        ("reassigned_away", {"agent": "pablo"}, "T-1 was reassigned"),
    ],
)
def test_every_kind_has_a_title(task, kind, details, expected):
    card = build_notification(kind, config=CONFIG, task=task, details=details)
    assert card.title.startswith(expected)
    if kind == "reassigned_away":
        assert ("Now with", "Pablo Ruiz") in card.fields and card.buttons == ()
    if kind == "reminder":
        assert ("Elapsed", "80% of first response") in card.fields


def test_digest_lists_the_open_tasks():
    tasks = [{"ref": "T-1", "status": "in_progress", "title": "Envío"}]
    card = build_notification(NotificationKind.DIGEST, config=CONFIG, task=None,
                              details={"tasks": tasks})
    assert (card.title, card.text) == ("Your open tasks (1)", "T-1 · in progress · Envío")


def test_slack_rendering_has_buttons_with_verb_and_ref(task):
    card = build_notification("assigned", config=CONFIG, task=task)
    rendered = render_slack(card)
    actions = rendered["blocks"][-1]
    assert actions["type"] == "actions"
    ids = [element["action_id"] for element in actions["elements"]]
    assert ids == ["opsbot:accept:T-1", "opsbot:decline:T-1"]
    assert [parse_action_id(i) for i in ids] == [("accept", "T-1"), ("decline", "T-1")]
    assert parse_action_id("something:else") is None


def test_telegram_rendering_escapes_html_and_keeps_callback_data_short(task):
    card = build_notification("follow_up", config=CONFIG, task=task,
                              details={"text": "<b>hola</b> & adiós"})
    rendered = render_telegram(card)
    assert "&lt;b&gt;hola&lt;/b&gt; &amp; adiós" in rendered["text"]
    row = rendered["reply_markup"].inline_keyboard[0]
    assert [b.callback_data for b in row] == ["accept:T-1", "decline:T-1"]
    assert parse_callback_data("accept:T-1") == ("accept", "T-1")
    with pytest.raises(ValueError, match="64 bytes"):
        callback_data("accept", "T-" + "9" * 70)


def test_the_card_after_an_action(task):
    card = build_notification("assigned", config=CONFIG, task=task)
    after = with_outcome(card, line="Accepted by Ana García at 10:42", status=TaskStatus.ACCEPTED)
    assert after.status_line == "Accepted by Ana García at 10:42"
    assert [b.verb for b in after.buttons] == ["start", "close"]
    assert dict(after.fields)["Status"] == "accepted"
    closed = with_outcome(card, line="Closed by Ana García", status=TaskStatus.CLOSED)
    assert render_telegram(closed)["reply_markup"] is None
    assert not [b for b in render_slack(closed)["blocks"] if b["type"] == "actions"]

"""Queueing agent cards and card edits as outbox rows (no Slack, no Telegram)."""

from sqlalchemy import update

from notifiers.channels import Recipient
from notifiers.queueing import (
    card_recipient,
    queue_card_updates,
    queue_notification,
    recipients_of,
    team_recipients,
)
from store.models import OutboxMessage, OutboxStatus, TaskStatus
from tests.notifiers.helpers import NOW, config, make_task

CONFIG = config()


def test_channel_choice_prefers_the_preferred_channel():
    assert list(recipients_of(CONFIG.agent("ana"))) == ["slack", "telegram"]
    assert list(recipients_of(CONFIG.agent("marta"))) == ["telegram", "slack"]
    assert recipients_of(CONFIG.agent("tina")) == {"telegram": 444}
    assert team_recipients(CONFIG, "logistics") == {"slack": "C0LOGI"}
    assert team_recipients(CONFIG, "nobody") == team_recipients(CONFIG, None) == {}


def test_queue_notification_rows(db):
    with db.transaction() as session:
        task = make_task(session, assignee="marta")
        row = queue_notification(session, config=CONFIG, kind="assigned", task=task,
                                 agent_id="marta", dedupe_key="assigned-1")
        assert (row.channel, row.agent_id, row.kind) == ("telegram", "marta", "assigned")
        assert row.payload["to"] == {"telegram": 333, "slack": "U0MARTA"}
        again = queue_notification(session, config=CONFIG, kind="assigned", task=task,
                                   agent_id="marta", dedupe_key="assigned-1")
        assert again is None
        team = queue_notification(session, config=CONFIG, kind="breach", task=task,
                                  agent_id=None, dedupe_key="breach-1")
        assert (team.channel, team.payload["to"], team.payload["team_post"]) == (
            "slack", {"slack": "C0LOGI"}, True)
        nobody = queue_notification(session, config=CONFIG, kind="assigned", task=task,
                                    agent_id="ghost", dedupe_key="ghost-1")
        assert nobody is None


def test_card_recipient_reads_the_queued_payload(db):
    with db.transaction() as session:
        task = make_task(session, assignee="marta")
        agent = queue_notification(session, config=CONFIG, kind="assigned", task=task,
                                   agent_id="marta", dedupe_key="assigned-1")
        team = queue_notification(session, config=CONFIG, kind="breach", task=task,
                                  agent_id=None, dedupe_key="breach-1")
    assert card_recipient(agent.payload, channel="telegram") == Recipient("333")
    assert card_recipient(agent.payload, channel="slack") == Recipient("U0MARTA")
    assert card_recipient(team.payload, channel="slack") == Recipient("C0LOGI", team=True)


def test_only_delivered_cards_are_updated_and_a_former_assignee_loses_the_buttons(db):
    with db.transaction() as session:
        task = make_task(session, assignee="ana")
        cards = [queue_notification(session, config=CONFIG, kind="assigned", task=task,
                                    agent_id=agent, dedupe_key=f"assigned-{agent}")
                 for agent in ("ana", "pablo", "marta")]
        delivered = [card.id for card in cards[:2]]  # marta's card is still on its way
        session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(delivered)).values(
            status=OutboxStatus.SENT, provider_chat_id="D1", provider_message_id="1.0"))
        updates = queue_card_updates(session, task=task, line="Accepted by Ana García",
                                     now=NOW)
        again = queue_card_updates(session, task=task, line="Accepted by Ana García", now=NOW)
    assert [row.payload["card_id"] for row in updates] == delivered
    assert again == []  # the same edit is queued once
    ana, pablo = (row.payload["notification"] for row in updates)
    assert ana["status_line"] == "Accepted by Ana García"
    assert [verb for verb, *_ in ana["buttons"]] == ["accept", "decline"]
    assert pablo["buttons"] == []
    assert {row.kind for row in updates} == {"card_update"}
    assert task.status == TaskStatus.ASSIGNED

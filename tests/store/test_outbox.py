"""The outbox: which delivered cards can be edited."""

from sqlalchemy import update

from store.lifecycle import SYSTEM
from store.models import OutboxMessage, OutboxStatus
from store.outbox import add_outbox_message, list_delivered_cards
from store.tasks import create_task

# key: (channel, kind, status, provider message id)
ROWS = {
    "slack-card": ("slack", "assigned", OutboxStatus.SENT, "1700000000.000100"),
    "telegram-card": ("telegram", "reminder", OutboxStatus.SENT, "7"),
    "pending-card": ("slack", "assigned", OutboxStatus.PENDING, None),
    "failed-card": ("telegram", "assigned", OutboxStatus.FAILED, None),
    "sent-without-id": ("slack", "breach", OutboxStatus.SENT, None),
    "an-edit": ("slack", "card_update", OutboxStatus.SENT, "1700000000.000100"),
    "customer-reply": ("whatsapp", "reply", OutboxStatus.SENT, "wamid.1"),
}


def test_delivered_cards_are_the_sent_ones_with_an_id_on_the_channels_asked(db):
    with db.transaction() as session:
        task = create_task(session, title="x", category="ops", priority="normal", actor=SYSTEM)
        other = create_task(session, title="y", category="ops", priority="normal", actor=SYSTEM)
        for key, (channel, kind, status, message_id) in ROWS.items():
            row = add_outbox_message(session, dedupe_key=key, channel=channel, kind=kind,
                                     payload={}, task_id=task.id)
            session.execute(update(OutboxMessage).where(OutboxMessage.id == row.id).values(
                status=status, provider_message_id=message_id))
        add_outbox_message(session, dedupe_key="other-task", channel="slack", kind="assigned",
                           payload={}, task_id=other.id)
        session.flush()
        cards = list_delivered_cards(session, task_id=task.id, channels=("slack", "telegram"),
                                     exclude_kinds=("card_update",))
        assert [card.dedupe_key for card in cards] == ["slack-card", "telegram-card"]
        only_telegram = list_delivered_cards(session, task_id=task.id, channels=["telegram"],
                                             exclude_kinds=())
        assert [card.dedupe_key for card in only_telegram] == ["telegram-card"]
        assert list_delivered_cards(session, task_id=other.id, channels=["slack"],
                                    exclude_kinds=()) == []

"""First response = the first message a person sends to the customer: not the acceptance,
not the automatic acknowledgement or closing message."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import select

from store.db import Database, upgrade_database
from store.lifecycle import SYSTEM, Action, Actor, ActorKind
from store.models import Contact, Message, Task
from store.outbox import queue_customer_message
from store.tasks import create_task, get_task, record_first_response, transition_task
from store.types import UTCDateTime

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
ANA = Actor(ActorKind.AGENT, "ana")


def accepted_task(session):
    contact = Contact(wa_id="34600000001", name="Carmen Ruiz", last_inbound_at=T0)
    session.add(contact)
    session.flush()
    task = create_task(session, title="Cambio de envío", category="operations",
                       priority="normal", actor=SYSTEM, contact_id=contact.id, now=T0,
                       first_response_due=T0 + timedelta(hours=1))
    transition_task(session, task=task, action=Action.ASSIGN, actor=SYSTEM, assignee_id="ana",
                    now=T0)
    transition_task(session, task=task, action=Action.ACCEPT, actor=ANA,
                    now=T0 + timedelta(seconds=1))
    return task


def queued(session, task, kind: str, key: str) -> Message:
    row = queue_customer_message(session, contact=task.contact, kind=kind, text="Hola",
                                 dedupe_key=key, task=task)
    return session.get(Message, row.payload["message_id"])


def test_accepting_is_not_a_first_response(db):
    with db.transaction() as session:
        task = accepted_task(session)
    assert task.accepted_at == T0 + timedelta(seconds=1)
    assert task.first_response_at is None


def test_the_first_sent_reply_is_the_first_response_and_replans_the_timers(db):
    with db.transaction() as session:
        task = accepted_task(session)
        session.flush()
        generation, version = task.timer_generation, task.version
        first, second = queued(session, task, "reply", "r-1"), queued(session, task, "reply", "r-2")
        assert record_first_response(session, message=first, at=T0 + timedelta(minutes=20))
        assert not record_first_response(session, message=second, at=T0 + timedelta(minutes=30))
        assert task.first_response_at == T0 + timedelta(minutes=20)  # the session sees it
        assert (task.timer_generation, task.version) == (generation + 1, version + 1)
        # the task stays usable in the same transaction
        transition_task(session, task=task, action=Action.START, actor=ANA, now=T0 + timedelta(
            minutes=40))
    with db.transaction() as session:
        stored = get_task(session, ref=task.id)
    assert (stored.first_response_at, stored.status) == (T0 + timedelta(minutes=20),
                                                         "in_progress")


def test_automatic_messages_never_count(db):
    with db.transaction() as session:
        task = accepted_task(session)
        for kind in ("ack", "closing"):
            message = queued(session, task, kind, f"{kind}-1")
            assert not record_first_response(session, message=message, at=T0)
        orphan = Message(direction="outbound", contact_id=task.contact_id, text="Hola")
        session.add(orphan)
        session.flush()
        assert not record_first_response(session, message=orphan, at=T0)
        assert task.first_response_at is None


def test_migration_0005_recomputes_first_responses_from_sent_replies(tmp_path):
    """Tasks upgraded from the accept-based figure: 1 answered (its first sent reply counts,
    not the failed one nor the ack), 2 accepted and never answered, 3 closed unanswered."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade_database(url, "0004")
    accepted, sent, later = (T0 + timedelta(seconds=1), T0 + timedelta(minutes=20),
                             T0 + timedelta(minutes=30))
    database = Database(url)
    with database.engine.begin() as connection:
        for number, status in ((1, "in_progress"), (2, "accepted"), (3, "closed")):
            connection.execute(_OLD_TASKS.insert().values(
                id=number, title="t", category="support", priority="normal", status=status,
                tags=[], skills=[], declined_by=[], channel="whatsapp", version=3,
                timer_generation=2, first_response_at=accepted, created_at=T0,
                updated_at=T0))
        for message_id, kind, wamid, at in ((1, "ack", "wamid.A", T0), (2, "reply", None, None),
                                            (3, "reply", "wamid.R1", sent),
                                            (4, "reply", "wamid.R2", later)):
            connection.execute(_OLD_MESSAGES.insert().values(
                id=message_id, direction="outbound", task_id=1, type="text", payload={},
                provider_message_id=wamid, sent_at=at, created_at=T0))
            connection.execute(_OLD_OUTBOX.insert().values(
                dedupe_key=f"k-{message_id}", task_id=1, channel="whatsapp", kind=kind,
                payload={"message_id": message_id}, status="sent", attempts=1, created_at=T0))
    upgrade_database(url)
    with database.transaction() as session:
        figures = {task.id: (task.first_response_at, task.timer_generation)
                   for task in session.scalars(select(Task))}
    database.dispose()
    assert figures == {1: (sent, 3), 2: (None, 3), 3: (None, 2)}  # closed: no timers to plan


_DATES = {"created_at", "updated_at", "first_response_at", "sent_at"}


def _old_table(name: str, *columns: str) -> sa.TableClause:
    return sa.table(name, *(sa.column(column, UTCDateTime(timezone=True) if column in _DATES
                                      else sa.JSON if column in ("tags", "skills", "declined_by",
                                                                 "payload") else None)
                            for column in columns))


_OLD_TASKS = _old_table("tasks", "id", "title", "category", "priority", "status", "tags",
                        "skills", "declined_by", "channel", "version", "timer_generation",
                        "first_response_at", "created_at", "updated_at")
_OLD_MESSAGES = _old_table("messages", "id", "direction", "task_id", "type", "payload",
                           "provider_message_id", "sent_at", "created_at")
_OLD_OUTBOX = _old_table("outbox", "dedupe_key", "task_id", "channel", "kind", "payload",
                         "status", "attempts", "created_at")

"""Rows written with a plain INSERT and a customer's tasks read in one query."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from store.contacts import upsert_contact
from store.lifecycle import SYSTEM, Action, Actor, ActorKind
from store.models import Contact, Task
from store.rows import insert_row
from store.tasks import create_task, find_customer_tasks, transition_task

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ANA = Actor(ActorKind.AGENT, "ana")


def test_an_inserted_row_is_in_the_session_with_its_defaults_and_updates_as_usual(db):
    with db.transaction() as session:
        task = insert_row(session, Task, {"title": "x", "category": "sales",
                                          "priority": "normal", "created_at": NOW,
                                          "updated_at": NOW})
        assert session.scalars(select(Task)).one() is task
        assert (task.status, task.channel, task.tags, task.timer_generation, task.version) == (
            "new", "whatsapp", [], 0, 1)
        task.title = "y"
    with db.transaction() as session:
        assert session.execute(select(Task.title, Task.version)).one() == ("y", 2)


def test_a_conflicting_row_is_skipped(db):
    with db.transaction() as session:
        values = {"wa_id_index": "index-of-34600000001", "crm_status": "lead", "tags": []}
        assert insert_row(session, Contact, values, skip_conflict=True) is not None
        assert insert_row(session, Contact, values, skip_conflict=True) is None


@pytest.mark.parametrize("released_first", [False, True], ids=["savepoint", "outer"])
def test_rows_of_a_rollback_leave_the_session(db, released_first):
    with db.transaction() as session:
        if released_first:  # released into the outer transaction, then all of it rolled back
            with session.begin_nested():
                contact, created = upsert_contact(session, wa_id="346001", user_id=None,
                                                  now=NOW)
            session.rollback()
        else:
            savepoint = session.begin_nested()
            contact, created = upsert_contact(session, wa_id="346001", user_id=None, now=NOW)
            savepoint.rollback()
        assert created and contact not in session
        again, created = upsert_contact(session, wa_id="346001", user_id=None, now=NOW)
        assert created and again in session


def test_a_customers_latest_and_latest_open_task_and_count(db):
    with db.transaction() as session:
        contact, _ = upsert_contact(session, wa_id="346002", user_id=None, now=NOW)
        assert find_customer_tasks(session, contact_id=contact.id).count == 0
        tasks = [create_task(session, title=f"t{i}", category="sales", priority="normal",
                             actor=SYSTEM, contact_id=contact.id, now=NOW) for i in range(3)]
        for action, actor, assignee in [(Action.ASSIGN, SYSTEM, "ana"), (Action.ACCEPT, ANA, None),
                                        (Action.CLOSE, ANA, None)]:
            transition_task(session, task=tasks[2], action=action, actor=actor,
                            assignee_id=assignee, now=NOW)
        found = find_customer_tasks(session, contact_id=contact.id)
        assert (found.count, found.last, found.open) == (3, tasks[2], tasks[1])

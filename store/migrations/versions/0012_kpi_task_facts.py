"""tasks: the audit trail's facts the KPIs read (automation, satisfaction), kept on the task

auto_routed_at (the first automatic routing), manual_step_at (the first creation, assignment
or reassignment by a person), first_accepted_at (the first acceptance), last_rated_at and
last_rating (the latest `rated` event and its rating, NULL when not 1-5): from now on written
with each event (store.events.note_task_fact), backfilled here from the events so far.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 06:00:00

"""

import json
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

import store.types

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = store.types.UTCDateTime(timezone=True)
FIRSTS = ("auto_routed_at", "manual_step_at", "first_accepted_at")
MANUAL_STEPS = ("created", "assign", "reassign")  # by a person: an actor `agent:…`
BATCH = 5000


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        for name in (*FIRSTS, "last_rated_at"):
            batch_op.add_column(sa.Column(name, UTC_TIME, nullable=True))
        batch_op.add_column(sa.Column("last_rating", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_tasks_last_rated_at"), ["last_rated_at"])
    backfill(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_last_rated_at"))
        for name in ("last_rating", "last_rated_at", *reversed(FIRSTS)):
            batch_op.drop_column(name)


_events = sa.table("task_events", sa.column("id", sa.Integer()), sa.column("task_id"),
                   sa.column("actor"), sa.column("action"), sa.column("details", sa.Text()),
                   sa.column("at", UTC_TIME))
_tasks = sa.table("tasks", sa.column("id", sa.Integer()), *(sa.column(name, UTC_TIME) for name in
                                                          (*FIRSTS, "last_rated_at")),
                  sa.column("last_rating", sa.Integer()))


def backfill(connection: sa.Connection) -> None:
    """Sets the facts of every task from its events (oldest first, as store.events keeps
    them): the first of each kind, the latest rating."""
    query = (sa.select(_events.c.task_id, _events.c.actor, _events.c.action,
                       _events.c.details, _events.c.at)
             .where(_events.c.task_id.is_not(None),
                    _events.c.action.in_(("accept", "routed", "rated", *MANUAL_STEPS)))
             .order_by(_events.c.at, _events.c.id))
    facts: dict[int, dict] = {}
    for task_id, actor, action, details, at in connection.execute(query):
        _fold(facts.setdefault(task_id, {}), actor, action, details, at)
    names = (*FIRSTS, "last_rated_at", "last_rating")
    update = (_tasks.update().where(_tasks.c.id == sa.bindparam("task"))
              .values({name: sa.bindparam(f"new_{name}") for name in names}))
    rows = [{"task": task_id, **{f"new_{name}": found.get(name) for name in names}}
            for task_id, found in facts.items()]
    for start in range(0, len(rows), BATCH):
        connection.execute(update, rows[start:start + BATCH])


def _fold(found: dict, actor: str, action: str, details: str | None, at: datetime) -> None:
    # the rule of store.events.task_fact, frozen as of this revision
    fact = None
    if action == "accept":
        fact = "first_accepted_at"
    elif action == "routed" and json.loads(details or "{}").get("automatic") is True:
        fact = "auto_routed_at"
    elif action in MANUAL_STEPS and actor.startswith("agent:"):
        fact = "manual_step_at"
    if fact is not None:
        found.setdefault(fact, at)
    elif action == "rated":
        rating = json.loads(details or "{}").get("rating")
        found["last_rated_at"] = at
        found["last_rating"] = rating if type(rating) is int and 1 <= rating <= 5 else None

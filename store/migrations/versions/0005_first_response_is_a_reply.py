"""tasks.first_response_at: the first reply a person sent the customer, not the acceptance

Until now pressing Accept set `first_response_at`, so a task whose customer heard nothing
counted as answered within seconds and within its SLA. From now on the first response is the
first agent `reply` that WhatsApp accepted (its outbound message has a wamid); the automatic
acknowledgement and the closing message do not count, and accepting is its own KPI (time to
accept, from the first `accept` audit event, which this migration leaves alone).

Data: every task's `first_response_at` is recomputed as the `sent_at` of its first sent
reply (an outbox row of kind `reply` names its outbound message) or NULL when no reply of it
ever reached WhatsApp. Open tasks whose value changed get a new timer generation, so workers
plan their timers again: one that was accepted but never answered, and whose first-response
due time has passed, is breached and its escalation ladder starts at once.

Downgrade leaves the data as it is: the old code reads the corrected values without harm.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 23:40:00

"""

from collections.abc import Iterator, Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

import store.types

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_STATUSES = ("new", "assigned", "accepted", "in_progress", "waiting_customer")
_CHUNK = 500

tasks = sa.table(
    "tasks", sa.column("id", sa.Integer), sa.column("status", sa.String),
    sa.column("first_response_at", store.types.UTCDateTime(timezone=True)),
    sa.column("timer_generation", sa.Integer),
)
messages = sa.table(
    "messages", sa.column("id", sa.Integer), sa.column("direction", sa.String),
    sa.column("provider_message_id", sa.String),
    sa.column("sent_at", store.types.UTCDateTime(timezone=True)),
)
outbox = sa.table(
    "outbox", sa.column("task_id", sa.Integer), sa.column("kind", sa.String),
    sa.column("channel", sa.String), sa.column("payload", sa.JSON),
)


def upgrade() -> None:
    bind = op.get_bind()
    answered = _first_replies(bind)
    replied = sa.select(outbox.c.task_id).where(outbox.c.kind == "reply")
    query = sa.select(tasks.c.id, tasks.c.status, tasks.c.first_response_at).where(
        sa.or_(tasks.c.first_response_at.is_not(None), tasks.c.id.in_(replied)))
    for task_id, status, current in bind.execute(query).all():
        corrected = answered.get(task_id)
        if corrected == current:
            continue
        values = {"first_response_at": corrected}
        if status in OPEN_STATUSES:
            values["timer_generation"] = tasks.c.timer_generation + 1
        bind.execute(sa.update(tasks).where(tasks.c.id == task_id).values(**values))


def downgrade() -> None:
    pass  # see the docstring: the corrected values stay


def _first_replies(bind) -> dict[int, datetime]:
    """Task id → when WhatsApp accepted its first reply, for every task with one."""
    reply_tasks: dict[int, int] = {}  # outbound message id → its task
    rows = bind.execute(sa.select(outbox.c.task_id, outbox.c.payload).where(
        outbox.c.kind == "reply", outbox.c.channel == "whatsapp", outbox.c.task_id.is_not(None)))
    for task_id, payload in rows:
        message_id = (payload or {}).get("message_id")
        if message_id is not None:
            reply_tasks[int(message_id)] = task_id
    first: dict[int, datetime] = {}
    for ids in _chunks(sorted(reply_tasks)):
        sent = bind.execute(sa.select(messages.c.id, messages.c.sent_at).where(
            messages.c.id.in_(ids), messages.c.direction == "outbound",
            messages.c.provider_message_id.is_not(None), messages.c.sent_at.is_not(None)))
        for message_id, sent_at in sent:
            task_id = reply_tasks[message_id]
            first[task_id] = min(sent_at, first.get(task_id, sent_at))
    return first


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start:start + _CHUNK]

"""claimed_by: the job that claimed an inbound event or outbox row; an index of the tasks
whose timers are still to schedule

Workers drain pending rows in batches; each claim records the claiming job's id so that the
sweeper can release the rows of a job that is gone. Every drain looks for tasks whose timers
are still to schedule: a partial index keeps that look cheap however many tasks exist.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 20:30:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("inbound_events", "outbox")
TIMERS_TO_SCHEDULE = "scheduled_generation IS NULL OR scheduled_generation != timer_generation"


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
    op.create_index("ix_tasks_timers_to_schedule", "tasks", ["id"],
                    sqlite_where=sa.text(TIMERS_TO_SCHEDULE),
                    postgresql_where=sa.text(TIMERS_TO_SCHEDULE))


def downgrade() -> None:
    op.drop_index("ix_tasks_timers_to_schedule", table_name="tasks")
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("claimed_by")

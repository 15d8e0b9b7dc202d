"""late_summary_at: tasks that arrived late, gathered per team for one summary card

A message that reaches us after its SLA deadline (Meta redelivers for days after an outage)
makes a task that is born late: it gets no breach escalations for the deadlines it missed
before it existed, and its team's supervisor gets one summary card for the whole backlog at
`late_summary_at`. A partial index keeps the look for a team's open summary cheap.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 10:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.types

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ARRIVED_LATE = "late_summary_at IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("late_summary_at", store.types.UTCDateTime(timezone=True),
                                      nullable=True))
    op.create_index("ix_tasks_late_summary_at", "tasks", ["late_summary_at"],
                    sqlite_where=sa.text(ARRIVED_LATE), postgresql_where=sa.text(ARRIVED_LATE))


def downgrade() -> None:
    op.drop_index("ix_tasks_late_summary_at", table_name="tasks")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("late_summary_at")

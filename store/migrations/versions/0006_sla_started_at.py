"""tasks.sla_started_at: when the current SLA period began, if not at creation

A reopened task gets new due times from its reopening; its reminders (a percentage of the
way to each due time) count from the reopening too. Existing tasks keep NULL: their SLA
began at creation.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 00:10:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.types

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sla_started_at", store.types.UTCDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("sla_started_at")

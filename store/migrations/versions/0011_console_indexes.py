"""The web console's indexes: tasks by creation and by resolution time (the KPIs read the
tasks of a period and those open in it)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 05:00:00

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tasks_created_at"), ["created_at"])
        batch_op.create_index(batch_op.f("ix_tasks_resolved_at"), ["resolved_at"])


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_resolved_at"))
        batch_op.drop_index(batch_op.f("ix_tasks_created_at"))

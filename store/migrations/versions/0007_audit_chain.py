"""task_events hash chain (prev_hash, hash), details kept as text, audit_anchors

Each event gets the hash of its chain's previous event and its own; the details are kept as
the exact text that was hashed (PostgreSQL's JSON becomes TEXT, its text unchanged). Existing
events keep NULL hashes: each chain starts at its first event written after this revision.
The chain's head is read through an index on (task_id, id), which replaces the one on task_id.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 02:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.types

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
        batch_op.alter_column("details", existing_type=sa.JSON(), type_=sa.Text(),
                              existing_nullable=False, postgresql_using="details::text")
        batch_op.drop_index(batch_op.f("ix_task_events_task_id"))
        batch_op.create_index(batch_op.f("ix_task_events_task_id_id"), ["task_id", "id"],
                              unique=False)
    op.create_table(
        "audit_anchors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heads", sa.JSON(), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=True),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_anchors")),
    )


def downgrade() -> None:
    op.drop_table("audit_anchors")
    with op.batch_alter_table("task_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_events_task_id_id"))
        batch_op.create_index(batch_op.f("ix_task_events_task_id"), ["task_id"], unique=False)
        batch_op.alter_column("details", existing_type=sa.Text(), type_=sa.JSON(),
                              existing_nullable=False, postgresql_using="details::json")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")

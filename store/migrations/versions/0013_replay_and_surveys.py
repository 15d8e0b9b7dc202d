"""rule_decisions (every rules decision that decided a message's fate, for `opsbot rules
replay`) and surveys (one satisfaction survey per task, its answer and comment)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 08:30:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.crypto
import store.types

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rule_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("rules_sha256", sa.String(length=64), nullable=False),
        sa.Column("effect", sa.String(length=16), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("contact_tags", sa.JSON(), nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=False),
        sa.Column("agents", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"],
                                name=op.f("fk_rule_decisions_contact_id_contacts")),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"],
                                name=op.f("fk_rule_decisions_message_id_messages")),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"],
                                name=op.f("fk_rule_decisions_task_id_tasks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_decisions")),
        sa.UniqueConstraint("message_id", name=op.f("uq_rule_decisions_message_id")),
    )
    op.create_index(op.f("ix_rule_decisions_at"), "rule_decisions", ["at"])
    op.create_index(op.f("ix_rule_decisions_contact_id"), "rule_decisions", ["contact_id"])
    op.create_table(
        "surveys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("team", sa.String(length=64), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", UTC_TIME, nullable=False),
        sa.Column("via", sa.String(length=16), nullable=True),
        sa.Column("sent_at", UTC_TIME, nullable=True),
        sa.Column("provider_message_id", sa.String(length=256), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("good", sa.Boolean(), nullable=True),
        sa.Column("answered_at", UTC_TIME, nullable=True),
        sa.Column("answered_by", sa.String(length=16), nullable=True),
        sa.Column("comment", store.crypto.SecretText(), nullable=True),
        sa.Column("comment_at", UTC_TIME, nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"],
                                name=op.f("fk_surveys_contact_id_contacts")),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_surveys_task_id_tasks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys")),
        sa.UniqueConstraint("task_id", name=op.f("uq_surveys_task_id")),
    )
    op.create_index(op.f("ix_surveys_contact_id"), "surveys", ["contact_id"])
    op.create_index(op.f("ix_surveys_sent_at"), "surveys", ["sent_at"])
    op.create_index(op.f("ix_surveys_answered_at"), "surveys", ["answered_at"])


def downgrade() -> None:
    for index in ("answered_at", "sent_at", "contact_id"):
        op.drop_index(op.f(f"ix_surveys_{index}"), table_name="surveys")
    op.drop_table("surveys")
    op.drop_index(op.f("ix_rule_decisions_contact_id"), table_name="rule_decisions")
    op.drop_index(op.f("ix_rule_decisions_at"), table_name="rule_decisions")
    op.drop_table("rule_decisions")

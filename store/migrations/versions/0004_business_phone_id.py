"""contacts.business_phone_id: the business's WhatsApp number the customer last wrote to;
contacts.identity_changed_at: when WhatsApp last said the customer's identity changed

A business may run several WhatsApp numbers on one opsbot; replies go out from the number
the customer wrote to. A changed identity (a new phone, a reinstall, or someone else) is
shown on the customer's task cards.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 23:10:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.types

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("business_phone_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("identity_changed_at",
                                      store.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("identity_changed_at")
        batch_op.drop_column("business_phone_id")

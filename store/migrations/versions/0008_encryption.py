"""Customer data encrypted at rest: data_keys, contacts' blind indexes, sealed columns

Each contact gets a data key (data_keys, wrapped by a master key); the columns that hold
customer data become text that holds sealed values (store.crypto). Numbers and BSUIDs are
found by their blind index, which replaces the unique wa_id and user_id; the raw events'
contact_key becomes a blind index too. Both are computed here for existing rows, with the
keys of the process that migrates (OPSBOT_INDEX_KEY). Existing values stay readable as
they are until `opsbot keys rotate` seals them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 02:40:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.types

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("wrapped", sa.String(length=200), nullable=True),
        sa.Column("created_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_keys")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_key_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("wa_id_index", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("user_id_index", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("erased_at", store.types.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.drop_constraint("uq_contacts_wa_id", type_="unique")
        batch_op.drop_constraint("uq_contacts_user_id", type_="unique")
        for column, length in (("wa_id", 32), ("user_id", 128), ("phone", 32), ("name", 200)):
            batch_op.alter_column(column, existing_type=sa.String(length=length),
                                  type_=sa.Text(), existing_nullable=True)
        batch_op.create_unique_constraint(op.f("uq_contacts_wa_id_index"), ["wa_id_index"])
        batch_op.create_unique_constraint(op.f("uq_contacts_user_id_index"), ["user_id_index"])
    # the copy SQLite makes keeps AUTOINCREMENT: task numbers are never reused
    with op.batch_alter_table("tasks", schema=None,
                              table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.alter_column("title", existing_type=sa.String(length=300), type_=sa.Text(),
                              existing_nullable=False)
    for table in ("messages", "outbox"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("payload", existing_type=sa.JSON(), type_=sa.Text(),
                                  existing_nullable=False, postgresql_using="payload::text")
    _index_existing_rows()


def _index_existing_rows() -> None:
    connection = op.get_bind()
    contacts = connection.execute(sa.text(
        "SELECT id, wa_id, user_id FROM contacts")).all()
    events = connection.execute(sa.text(
        "SELECT id, contact_key FROM inbound_events "
        "WHERE contact_key IS NOT NULL AND kind != 'command'")).all()
    if not contacts and not events:
        return
    from store.keys import blind_index  # needs the keys: only when there is data

    for row in contacts:
        connection.execute(
            sa.text("UPDATE contacts SET wa_id_index = :wa, user_id_index = :user "
                    "WHERE id = :id"),
            {"id": row.id, "wa": row.wa_id and blind_index(row.wa_id),
             "user": row.user_id and blind_index(row.user_id)})
    for row in events:
        connection.execute(sa.text("UPDATE inbound_events SET contact_key = :key WHERE id = :id"),
                           {"id": row.id, "key": blind_index(row.contact_key)})


def downgrade() -> None:
    for table in ("outbox", "messages"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("payload", existing_type=sa.Text(), type_=sa.JSON(),
                                  existing_nullable=False, postgresql_using="payload::json")
    with op.batch_alter_table("tasks", schema=None,
                              table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.alter_column("title", existing_type=sa.Text(), type_=sa.String(length=300),
                              existing_nullable=False)
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_contacts_user_id_index"), type_="unique")
        batch_op.drop_constraint(op.f("uq_contacts_wa_id_index"), type_="unique")
        for column, length in (("wa_id", 32), ("user_id", 128), ("phone", 32), ("name", 200)):
            batch_op.alter_column(column, existing_type=sa.Text(),
                                  type_=sa.String(length=length), existing_nullable=True)
        batch_op.create_unique_constraint("uq_contacts_user_id", ["user_id"])
        batch_op.create_unique_constraint("uq_contacts_wa_id", ["wa_id"])
        for column in ("erased_at", "user_id_index", "wa_id_index", "data_key_id"):
            batch_op.drop_column(column)
    op.drop_table("data_keys")

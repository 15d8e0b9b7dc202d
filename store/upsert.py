"""INSERT … ON CONFLICT DO NOTHING for the backends opsbot runs on (SQLite, PostgreSQL)."""

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(session: Session, model):
    """An insert of `model` that silently skips rows violating a unique constraint."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(model).on_conflict_do_nothing()

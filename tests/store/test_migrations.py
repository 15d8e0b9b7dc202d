from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from store.db import Database, upgrade_database
from store.models import Base


def test_upgrade_twice_is_a_no_op(database_url):
    upgrade_database(database_url)
    upgrade_database(database_url)
    database = Database(database_url)
    tables = set(inspect(database.engine).get_table_names())
    database.dispose()
    assert {t.name for t in Base.metadata.sorted_tables} <= tables


def test_models_and_migrations_agree(database_url):
    database = Database(database_url)
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    database.dispose()
    assert differences == []


def test_upgrade_creates_an_empty_sqlite_database_under_a_new_folder(tmp_path):
    url = f"sqlite:///{tmp_path / 'var' / 'fresh.db'}"
    upgrade_database(url)
    upgrade_database(url)
    assert (tmp_path / "var" / "fresh.db").exists()

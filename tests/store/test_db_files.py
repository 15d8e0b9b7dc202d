"""The SQLite database, its -wal and -shm files and the folders made for them are the owner's
only: customer data must not be readable by the machine's other users."""

from pathlib import Path

from sqlalchemy import text

from store.db import Database, upgrade_database
from tests.raw_database import mode


def test_a_new_database_and_its_folders_are_owner_only(tmp_path, usual_umask):
    path = tmp_path / "var" / "data" / "opsbot.db"
    database = Database(f"sqlite:///{path}")
    try:
        with database.transaction() as session:
            session.execute(text("CREATE TABLE t (x INTEGER)"))
            session.execute(text("INSERT INTO t VALUES (1)"))
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        assert wal.exists() and shm.exists()  # WAL mode, while a connection is open
        assert {p.name: mode(p) for p in (path, wal, shm)} == {
            "opsbot.db": 0o600, "opsbot.db-wal": 0o600, "opsbot.db-shm": 0o600}
        assert mode(tmp_path / "var") == 0o700
        assert mode(tmp_path / "var" / "data") == 0o700
    finally:
        database.dispose()


def test_migrating_a_new_database_creates_it_owner_only(tmp_path, usual_umask):
    path = tmp_path / "var" / "opsbot.db"
    upgrade_database(f"sqlite:///{path}")
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def test_existing_folders_and_files_keep_their_modes(tmp_path, usual_umask):
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    path = folder / "opsbot.db"
    path.touch(mode=0o640)
    database = Database(f"sqlite:///{path}")
    try:
        with database.transaction() as session:
            session.execute(text("SELECT 1"))
    finally:
        database.dispose()
    assert (mode(folder), mode(path)) == (0o755, 0o640)

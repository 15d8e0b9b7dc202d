"""Claims on outbox rows: oldest first, each row by one job, never a held one."""

import threading
from datetime import UTC, datetime

from store.claims import claim_outbox
from store.outbox import add_outbox_message

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def add_rows(db, count: int) -> list[int]:
    with db.transaction() as session:
        rows = [add_outbox_message(session, dedupe_key=f"row-{i}", channel="slack",
                                   kind="assigned", payload={"n": i}) for i in range(count)]
        session.flush()
        return [row.id for row in rows]


def test_a_claim_returns_the_oldest_free_rows_loaded_and_held_by_their_job(db):
    ids = add_rows(db, 3)
    with db.transaction() as session:
        first = claim_outbox(session, owner="job-1", limit=2, now=NOW)
        assert [row.id for row in first] == ids[:2]
        assert [(row.claimed_by, row.payload) for row in first] == [
            ("job-1", {"n": 0}), ("job-1", {"n": 1})]
    with db.transaction() as session:
        assert [row.id for row in claim_outbox(session, owner="job-2", limit=5, now=NOW)] == ids[2:]
        assert claim_outbox(session, owner="job-3", limit=5, now=NOW) == []
        # a job restarted under the same id takes its rows back
        assert [row.id for row in claim_outbox(session, owner="job-1", limit=5, now=NOW)] == ids[:2]


def test_a_second_worker_skips_the_rows_the_first_is_claiming(db):
    ids = add_rows(db, 4)
    second: list[int] = []

    def other_worker() -> None:
        with db.transaction() as session:
            second.extend(row.id for row in claim_outbox(session, owner="job-2", limit=10,
                                                          now=NOW))

    with db.transaction() as session:
        first = [row.id for row in claim_outbox(session, owner="job-1", limit=2, now=NOW)]
        thread = threading.Thread(target=other_worker)
        thread.start()
        thread.join(timeout=5 if db.engine.dialect.name == "postgresql" else 0.2)
        if db.engine.dialect.name == "postgresql":  # SKIP LOCKED: no wait for the first
            assert not thread.is_alive()
    thread.join()  # on SQLite, after the first's commit: its one writer holds the database
    assert (first, second) == (ids[:2], ids[2:])

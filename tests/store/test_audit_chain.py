"""The audit trail's hash chains and anchors: each tampering, done in SQL, is found and named."""

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from store.audit import verify_audit, write_anchor
from store.db import Database, upgrade_database
from store.events import Audit, record_event
from store.lifecycle import SYSTEM
from store.models import Task
from store.tasks import create_task

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _task_with_events(db: Database, count: int = 4) -> tuple[int, list[int]]:
    """A task whose chain holds `count` events (its `created` one first), anchored."""
    with db.transaction() as session:
        task = create_task(session, title="Pedido 7", category="support", priority="normal",
                           actor=SYSTEM, now=T0)
        for n in range(1, count):
            record_event(session, task=task, actor="ana", action=Audit.NOTE,
                         details={"label": f"nota {n} ñ", "n": n}, at=T0 + timedelta(minutes=n))
        write_anchor(session, now=T0 + timedelta(hours=1))
        ids = list(session.scalars(text("SELECT id FROM task_events WHERE task_id = :t "
                                        "ORDER BY id"), {"t": task.id}))
    return task.id, ids


def _sql(db: Database, statement: str, **params) -> None:
    with db.engine.begin() as connection:
        connection.execute(text(statement), params)


def _row(db: Database, event_id: int) -> dict:
    with db.engine.connect() as connection:
        return dict(connection.execute(text("SELECT * FROM task_events WHERE id = :id"),
                                       {"id": event_id}).mappings().one())


def _verify(db: Database):
    with db.transaction(readonly=True) as session:
        return verify_audit(session)


def test_an_untouched_trail_verifies(db):
    task_id, ids = _task_with_events(db)
    with db.transaction() as session:
        record_event(session, task=None, actor="whatsapp", action=Audit.WHATSAPP_ERROR,
                     details={"code": 130429})
    report = _verify(db)
    assert report.ok and report.problems == []
    assert (report.events, report.chains, report.anchors, report.legacy) == (5, 2, 1, 0)
    rows = [_row(db, i) for i in ids]
    assert rows[0]["prev_hash"] is None
    assert [r["prev_hash"] for r in rows[1:]] == [r["hash"] for r in rows[:-1]]
    assert rows[1]["details"] == '{"label":"nota 1 ñ","n":1}'  # canonical, as hashed


def test_an_edited_field_is_named(db):
    task_id, ids = _task_with_events(db)
    _sql(db, "UPDATE task_events SET actor = 'mallory' WHERE id = :id", id=ids[1])
    report = _verify(db)
    assert not report.ok
    assert str(report.problems[0]) == (f"T-{task_id} event {ids[1]}: edited (the hash does "
                                       "not match its content)")
    assert len(report.problems) == 1


def test_edited_details_are_named(db):
    task_id, ids = _task_with_events(db)
    _sql(db, "UPDATE task_events SET details = :d WHERE id = :id", id=ids[2],
         d='{"label":"otra","n":2}')
    [problem] = _verify(db).problems
    assert (problem.task_id, problem.event_id, problem.kind) == (task_id, ids[2], "edited")


def test_a_deleted_middle_event_is_named(db):
    task_id, ids = _task_with_events(db)
    _sql(db, "DELETE FROM task_events WHERE id = :id", id=ids[1])
    [problem] = _verify(db).problems
    assert (problem.task_id, problem.event_id, problem.kind) == (task_id, ids[2], "deleted")


def test_a_deleted_last_event_is_caught_by_the_anchor(db):
    task_id, ids = _task_with_events(db)
    _sql(db, "DELETE FROM task_events WHERE id = :id", id=ids[-1])
    [problem] = _verify(db).problems
    assert (problem.task_id, problem.event_id, problem.kind) == (task_id, ids[-1], "deleted")


def test_swapped_events_are_named(db):
    task_id, ids = _task_with_events(db)
    first, second = _row(db, ids[1]), _row(db, ids[2])
    for target, source in ((ids[1], second), (ids[2], first)):
        _sql(db, "UPDATE task_events SET actor = :actor, action = :action, details = :details, "
                 "at = :at, prev_hash = :prev_hash, hash = :hash WHERE id = :id",
             id=target, **{k: source[k] for k in ("actor", "action", "details", "at",
                                                   "prev_hash", "hash")})
    report = _verify(db)
    assert report.problems[0].event_id == ids[1]
    assert {p.kind for p in report.problems} == {"reordered"}


def test_a_row_forged_without_the_key_is_named(db):
    task_id, ids = _task_with_events(db)
    head = _row(db, ids[-1])
    fields = [task_id, "ana", "note", None, None, '{"text":"refund approved"}',
              "2026-11-30T11:00:00.000000+00:00", head["hash"]]
    forged = hashlib.sha256(json.dumps(fields, separators=(",", ":")).encode()).hexdigest()
    _sql(db, "INSERT INTO task_events (task_id, actor, action, details, at, prev_hash, hash) "
             "VALUES (:t, 'ana', 'note', :d, :at, :p, :h)", t=task_id,
         d='{"text":"refund approved"}', at=T0 + timedelta(hours=2), p=head["hash"], h=forged)
    [problem] = _verify(db).problems
    assert (problem.task_id, problem.event_id, problem.kind) == (task_id, ids[-1] + 1, "forged")


def test_an_edited_anchor_is_named(db):
    _task_with_events(db)
    _sql(db, "UPDATE audit_anchors SET event_count = event_count + 1")
    [problem] = _verify(db).problems
    assert problem.kind == "anchor" and str(problem).startswith("anchors: anchor")


def _purge(db: Database, task_id: int) -> None:
    _sql(db, "DELETE FROM task_events WHERE task_id = :t", t=task_id)
    _sql(db, "DELETE FROM tasks WHERE id = :t", t=task_id)


def test_a_chain_purged_by_retention_may_be_gone(db):
    task_id, _ = _task_with_events(db)
    _purge(db, task_id)
    with db.transaction() as session:
        record_event(session, task=None, actor="retention", action=Audit.RETENTION,
                     details={"before": "2026-01-01", "purged_tasks": [task_id]})
    assert _verify(db).ok


def test_a_chain_gone_without_retention_is_deleted(db):
    task_id, ids = _task_with_events(db)
    _purge(db, task_id)
    [problem] = _verify(db).problems
    assert (problem.task_id, problem.event_id, problem.kind) == (task_id, ids[-1], "deleted")


def test_a_forged_retention_event_purges_nothing(db):
    task_id, ids = _task_with_events(db)
    _purge(db, task_id)
    _sql(db, "INSERT INTO task_events (actor, action, details, at) VALUES ('retention', "
             "'retention', :d, :at)", d=json.dumps({"purged_tasks": [task_id]}), at=T0)
    kinds = {(p.event_id, p.kind) for p in _verify(db).problems}
    assert (ids[-1], "deleted") in kinds


def test_a_rolled_back_savepoint_leaves_the_chain_linear(db):
    with db.transaction() as session:
        task = create_task(session, title="t", category="support", priority="normal",
                           actor=SYSTEM)
        savepoint = session.begin_nested()
        record_event(session, task=task, actor="ana", action=Audit.NOTE, details={"n": 1})
        savepoint.rollback()
        record_event(session, task=task, actor="ana", action=Audit.NOTE, details={"n": 2})
    assert _verify(db).ok


def test_events_written_before_the_chain_are_counted_as_legacy(db):
    task_id, ids = _task_with_events(db, count=2)
    _sql(db, "UPDATE task_events SET prev_hash = NULL, hash = NULL")  # as 0007 leaves them
    _sql(db, "DELETE FROM audit_anchors")
    with db.transaction() as session:
        record_event(session, task=session.get(Task, task_id), actor="ana",
                     action=Audit.NOTE, details={"n": 3})
    report = _verify(db)
    assert (report.ok, report.legacy, report.events) == (True, 2, 3)
    _sql(db, "INSERT INTO task_events (task_id, actor, action, details, at) "
             "VALUES (:t, 'ana', 'note', '{}', :at)", t=task_id, at=T0)
    [problem] = _verify(db).problems
    assert (problem.task_id, problem.event_id, problem.kind) == (task_id, ids[-1] + 2, "edited")


def test_migration_0007_keeps_existing_events_as_legacy(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade_database(url, "0006")
    database = Database(url)
    _sql(database, "INSERT INTO tasks (id, title, category, priority, status, tags, skills, "
                   "declined_by, channel, version, timer_generation, created_at, updated_at) "
                   "VALUES (1, 't', 'support', 'normal', 'new', '[]', '[]', '[]', 'whatsapp', "
                   "1, 0, :at, :at)", at=T0)
    _sql(database, "INSERT INTO task_events (task_id, actor, action, details, at) "
                   "VALUES (1, 'system', 'created', :d, :at)", d='{"a": 1}', at=T0)
    upgrade_database(url, "0007")
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT details FROM task_events")).scalar() == (
            '{"a": 1}')
    database.dispose()


def test_concurrent_appends_to_one_task_keep_its_chain_linear(db):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: its appends cannot interleave")
    task_id, _ = _task_with_events(db, count=1)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def append(actor: str) -> None:
        try:
            start.wait(timeout=10)
            for n in range(10):
                with db.transaction() as session:
                    task = session.get(Task, task_id)
                    record_event(session, task=task, actor=actor, action=Audit.NOTE,
                                 details={"n": n})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(name,)) for name in ("ana", "bea")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    report = _verify(db)
    assert report.ok, report.problems
    assert report.events == 21

"""`opsbot audit verify`: exit 0 on an intact trail, 1 and the first broken event otherwise."""

import json

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from bot.cli import app
from store.audit import write_anchor
from store.db import Database
from store.events import Audit, record_event
from store.lifecycle import SYSTEM
from store.tasks import create_task

runner = CliRunner()


@pytest.fixture
def trail(monkeypatch, database_url, redis_url) -> tuple[Database, int, list[int]]:
    """A task with three events, anchored; the CLI pointed at its database."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("WHATSAPP_TOKEN", raising=False)
    database = Database(database_url)
    with database.transaction() as session:
        task = create_task(session, title="t", category="support", priority="normal",
                           actor=SYSTEM)
        for n in (1, 2):
            record_event(session, task=task, actor="ana", action=Audit.NOTE, details={"n": n})
        write_anchor(session, now=task.created_at)
        ids = list(session.scalars(text("SELECT id FROM task_events ORDER BY id")))
    yield database, task.id, ids
    database.dispose()


def test_an_intact_trail_exits_0(trail):
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "audit trail intact: 3 event(s) in 1 chain(s), 1 anchor(s)" in result.output
    as_json = runner.invoke(app, ["audit", "verify", "--json"])
    assert as_json.exit_code == 0
    report = json.loads(as_json.output)
    assert (report["ok"], report["events"], report["problems"]) == (True, 3, [])


def test_an_edited_event_exits_1_and_is_named(trail):
    database, task_id, ids = trail
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE task_events SET to_status = 'closed' WHERE id = :id"),
                           {"id": ids[1]})
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"T-{task_id} event {ids[1]}: edited (the hash does not match its content)",
        "1 problem(s) in 3 event(s)"]
    as_json = runner.invoke(app, ["audit", "verify", "--json"])
    assert as_json.exit_code == 1
    [problem] = json.loads(as_json.output)["problems"]
    assert problem == {"task_id": task_id, "event_id": ids[1], "kind": "edited",
                       "chain": f"T-{task_id}", "detail": "the hash does not match its content",
                       "text": f"T-{task_id} event {ids[1]}: edited (the hash does not match "
                               "its content)"}

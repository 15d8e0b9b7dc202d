import json

from typer.testing import CliRunner

from bot.cli import app
from store.db import Database
from store.lifecycle import SYSTEM, Action
from store.tasks import create_task, transition_task

runner = CliRunner()


def test_db_upgrade_on_empty_then_migrated_database(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    for _ in range(2):
        result = runner.invoke(app, ["db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert "is up to date" in result.output


def test_tasks_list_and_show(monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    database = Database(database_url)
    with database.transaction() as session:
        task = create_task(session, title="Cambio de envío", category="operations",
                           priority="high", actor=SYSTEM, team="logistics")
        transition_task(session, task=task, action=Action.ASSIGN, actor=SYSTEM, assignee_id="ana")
    database.dispose()

    listed = runner.invoke(app, ["tasks", "list", "--status", "assigned", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [(t["ref"], t["assignee"]) for t in json.loads(listed.output)] == [("T-1", "ana")]
    assert "no tasks" in runner.invoke(app, ["tasks", "list", "--status", "closed"]).output

    shown = json.loads(runner.invoke(app, ["tasks", "show", "1", "--json"]).output)
    assert [(e["action"], e["to"]) for e in shown["events"]] == [
        ("created", "new"), ("assign", "assigned"),
    ]
    human = runner.invoke(app, ["tasks", "show", "T-1"])
    assert "Cambio de envío" in human.output and "assign" in human.output

    missing = runner.invoke(app, ["tasks", "show", "T-404"])
    assert missing.exit_code == 1 and "There is no task T-404" in missing.output

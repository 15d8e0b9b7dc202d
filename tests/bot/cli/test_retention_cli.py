"""`opsbot retention run [--dry-run] [--json]` against a real database."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app
from store.db import Database
from store.events import Audit
from store.lifecycle import SYSTEM
from store.models import EventStatus, InboundEvent, TaskEvent, TaskStatus
from store.tasks import create_task
from store.types import utcnow

# what goes with raw events, none in these tests (finished webhooks, idempotency records)
NOTHING_ELSE = {"webhook_deliveries": 0, "idempotent_requests": 0}

runner = CliRunner()
SHIPPED = Path(__file__).resolve().parents[3] / "rules.yaml"
RETENTION = "\nretention: {raw_events: 30d, messages: 365d, closed_tasks: 730d}\n"


@pytest.fixture
def env(monkeypatch, tmp_path, database_url) -> Path:
    """The database and a rules file (with a retention section unless a test rewrites it)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(_without_retention() + RETENTION, encoding="utf-8")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("RULES_PATH", str(rules))
    return rules


def _without_retention() -> str:
    text = SHIPPED.read_text(encoding="utf-8")
    return text.split("\nretention:")[0]


@pytest.fixture
def old_data(database_url) -> int:
    """Two processed and one failed raw event 40 days old; a task closed 800 days ago."""
    long_ago = utcnow() - timedelta(days=800)
    database = Database(database_url)
    with database.transaction() as session:
        session.add_all(InboundEvent(provider="whatsapp", provider_event_id=f"e{i}",
                                     raw_body=b"{}", status=status,
                                     received_at=utcnow() - timedelta(days=40))
                        for i, status in enumerate([EventStatus.PROCESSED] * 2
                                                   + [EventStatus.FAILED]))
        task = create_task(session, title="Viejo", category="ops", priority="normal",
                           actor=SYSTEM, now=long_ago)
        task.status, task.closed_at = TaskStatus.CLOSED, long_ago
    database.dispose()
    return task.id


def test_dry_run_then_run(env, old_data, database_url):
    dry = runner.invoke(app, ["retention", "run", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output
    assert "raw_events" in dry.output and "would go: 2" in dry.output
    assert "kept: 1 failed or pending" in dry.output
    dry_json = json.loads(runner.invoke(app, ["retention", "run", "--dry-run", "--json"]).output)
    assert dry_json["removed"] == {"raw_events": 2, **NOTHING_ELSE, "messages": 0,
                                   "closed_tasks": 1}
    assert dry_json["dry_run"] is True and dry_json["purged_tasks"] == []

    done = runner.invoke(app, ["retention", "run", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["removed"] == {"raw_events": 2, **NOTHING_ELSE, "messages": 0, "closed_tasks": 1}
    assert report["purged_tasks"] == [old_data] and report["dry_run"] is False
    assert set(report["cutoffs"]) == {"raw_events", *NOTHING_ELSE, "messages", "closed_tasks"}

    again = runner.invoke(app, ["retention", "run"])
    assert again.exit_code == 0 and "removed: 0" in again.output
    database = Database(database_url)
    with database.transaction(readonly=True) as session:
        actors = session.scalars(select(TaskEvent.actor).where(TaskEvent.action == Audit.RETENTION))
        assert set(actors) == {"cli"}
    database.dispose()


def test_without_a_retention_section_everything_is_kept(env, old_data):
    env.write_text(_without_retention(), encoding="utf-8")
    result = runner.invoke(app, ["retention", "run"])
    assert result.exit_code == 0, result.output
    assert "no retention: section: everything is kept" in result.output


def test_an_invalid_retention_is_one_line_and_exit_2(env):
    env.write_text(_without_retention() + "\nretention: {messages: 0d}\n", encoding="utf-8")
    result = runner.invoke(app, ["retention", "run"])
    assert result.exit_code == 2
    assert "retention.messages: a retention period must be longer than zero" in result.output

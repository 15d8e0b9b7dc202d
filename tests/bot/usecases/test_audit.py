"""keep_audit: an anchor every AUDIT_ANCHOR_EVERY when the trail grew, a verification a day
(recorded on the trail), and the admins told when it fails."""

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from bot.usecases.audit import keep_audit
from store.events import Audit, record_event
from store.models import AuditAnchor, OutboxMessage, TaskEvent
from store.types import utcnow
from tests.bot.workers_support import RULES, make_services, new_task, write_rules

ADMIN_RULES = RULES + "  - {id: root, name: Root, slack: U0ROOT, admin: true}\n"


@pytest.fixture
def services(database_url, redis_url, tmp_path):
    services = make_services(database_url, redis_url, write_rules(tmp_path, ADMIN_RULES))
    yield services
    services.close()


def _count(services, model, *where) -> int:
    with services.db.transaction(readonly=True) as session:
        return len(session.scalars(select(model.id).where(*where)).all())


def test_anchors_follow_their_cadence_and_verification_is_daily(services):
    new_task(services)
    now = utcnow()
    report = keep_audit(services, now=now)
    assert report is not None and report.ok
    assert _count(services, AuditAnchor) == 1
    verified = TaskEvent.action == Audit.AUDIT_VERIFIED
    assert _count(services, TaskEvent, verified) == 1

    with services.db.transaction() as session:
        record_event(session, task=None, actor="ana", action=Audit.NOTE)
    assert keep_audit(services, now=now + timedelta(minutes=5)) is None  # too soon for both
    assert _count(services, AuditAnchor) == 1
    assert keep_audit(services, now=now + timedelta(minutes=11)) is None
    assert _count(services, AuditAnchor) == 2
    assert keep_audit(services, now=now + timedelta(minutes=22)) is None  # nothing new
    assert _count(services, AuditAnchor) == 2

    assert keep_audit(services, now=now + timedelta(days=1, minutes=1)).ok
    assert _count(services, TaskEvent, verified) == 2
    assert _count(services, OutboxMessage, OutboxMessage.dedupe_key.startswith("audit-")) == 0


def test_a_broken_trail_alerts_the_admins_once_a_day(services):
    task_id = new_task(services)
    with services.db.engine.begin() as connection:
        connection.execute(text("UPDATE task_events SET actor = 'mallory' WHERE task_id = :t"),
                           {"t": task_id})
    now = utcnow()
    report = keep_audit(services, now=now)
    assert report is not None and not report.ok
    assert report.problems[0].task_id == task_id
    with services.db.transaction(readonly=True) as session:
        [alert] = session.scalars(select(OutboxMessage).where(
            OutboxMessage.dedupe_key.startswith("audit-broken-"))).all()
        [verified] = session.scalars(select(TaskEvent).where(
            TaskEvent.action == Audit.AUDIT_VERIFIED)).all()
    assert (alert.agent_id, alert.kind) == ("root", "audit_broken")
    assert f"T-{task_id} event" in str(alert.payload["notification"])
    assert verified.details == {"ok": False, "events": report.events,
                                "problems": len(report.problems)}

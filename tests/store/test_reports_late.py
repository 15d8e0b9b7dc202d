"""The report on tasks born late: each counts as an SLA breach, and as arrived late."""

from datetime import UTC, datetime, timedelta

from store.events import Audit, record_event
from store.lifecycle import SYSTEM, Action, Actor, ActorKind
from store.reports import SlaShare, build_report, report_as_dict
from store.tasks import create_task, transition_task

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ANA = Actor(ActorKind.AGENT, "ana")


def task(session, team: str, *, created: datetime, sent: datetime, late: bool):
    """A task from a message sent at `sent` (1 h / 8 h deadlines from then), created at
    `created` and, when `late`, marked as processing marks a task born late."""
    made = create_task(session, title="pedido", category="support", priority="normal",
                       actor=SYSTEM, now=created, team=team,
                       first_response_due=sent + timedelta(hours=1),
                       resolution_due=sent + timedelta(hours=8),
                       late_summary_at=created + timedelta(minutes=2) if late else None)
    if late:
        record_event(session, task=made, actor=SYSTEM.label, action=Audit.ARRIVED_LATE,
                     at=created, details={"reason": "arrived late: …"})
    return made


def test_a_task_born_late_counts_as_a_breach_with_its_reason(db):
    created = NOW - timedelta(hours=3)
    with db.transaction() as session:
        late = task(session, "support", created=created, sent=created - timedelta(days=2),
                    late=True)
        transition_task(session, task=late, action=Action.ASSIGN, actor=SYSTEM,
                        assignee_id="ana", now=created)
        transition_task(session, task=late, action=Action.ACCEPT, actor=ANA,
                        now=created + timedelta(minutes=5))
        late.first_response_at = created + timedelta(minutes=6)  # answered quickly: still late
        on_time = task(session, "support", created=created, sent=created, late=False)
        transition_task(session, task=on_time, action=Action.ASSIGN, actor=SYSTEM,
                        assignee_id="ana", now=created)
        transition_task(session, task=on_time, action=Action.ACCEPT, actor=ANA,
                        now=created + timedelta(minutes=5))
        on_time.first_response_at = created + timedelta(minutes=6)  # its reply was sent
        task(session, "billing", created=created, sent=created - timedelta(days=2), late=True)
    with db.transaction() as session:
        report = build_report(session, since=NOW - timedelta(days=1), until=NOW,
                              minutes_per_task=5)
    # late: breached although answered in 5 min; on time: answered, resolution pending;
    # billing: breached. Both born late are counted with their reason, none escalated.
    assert report.sla.overall == SlaShare(0, 2, 1, 0, 0.0)
    assert report.sla.by_team == {"billing": SlaShare(0, 1, 0, 0, 0.0),
                                  "support": SlaShare(0, 1, 1, 0, 0.0)}
    assert (report.alerts.arrived_late, report.alerts.escalations) == (2, 0)
    assert report_as_dict(report)["alerts"]["arrived_late"] == 2

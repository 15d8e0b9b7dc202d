"""Keeping the audit trail tamper-evident: an anchor every AUDIT_ANCHOR_EVERY, a full
verification every AUDIT_VERIFY_EVERY, and the admins told when it fails.

The time of the last verification is its `audit_verified` event on the system chain rather
than a Redis key: the trail itself then shows that it was checked, and when, and losing
Redis's data never skips a day. Two workers sweeping at the same moment may both verify;
that costs one pass more, and the alert is queued once per day (its dedupe key).
"""

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from bot.core import tunables
from bot.core.services import Services
from notifiers.notifications import NotificationKind
from notifiers.queueing import queue_notification
from store.audit import AuditReport, last_verified_at, needs_anchor, verify_audit, write_anchor
from store.events import Audit, record_event

log = logging.getLogger(__name__)


def keep_audit(services: Services, *, now: datetime) -> AuditReport | None:
    """Writes an anchor when one is due and verifies the trail when a verification is due;
    returns the verification's report, or None when none was due."""
    with services.db.transaction(readonly=True) as session:
        anchor_due = needs_anchor(session, before=now - tunables.AUDIT_ANCHOR_EVERY)
        verified = last_verified_at(session)
    if anchor_due:
        with services.db.transaction() as session:
            write_anchor(session, now=now)
    if verified is not None and now - verified < tunables.AUDIT_VERIFY_EVERY:
        return None
    with services.db.transaction(readonly=True) as session:  # a long read holds no lock
        report = verify_audit(session)
    with services.db.transaction() as session:
        record_event(session, task=None, actor="opsbot", action=Audit.AUDIT_VERIFIED, at=now,
                     details={"ok": report.ok, "events": report.events,
                              "problems": len(report.problems)})
        if not report.ok:
            _tell_admins(services, session, report, now)
    return report


def _tell_admins(services: Services, session: Session, report: AuditReport, now: datetime) -> None:
    first = report.problems[0]
    log.error("the audit trail is broken: %s (%d problem(s))", first, len(report.problems))
    details = {"first": str(first), "problems": len(report.problems)}
    config = services.rules.current
    for agent in (agent for agent in config.agents if agent.admin):
        queue_notification(session, config=config, kind=NotificationKind.AUDIT_BROKEN,
                           task=None, agent_id=agent.id, details=details,
                           dedupe_key=f"audit-broken-{agent.id}-{now.date().isoformat()}")

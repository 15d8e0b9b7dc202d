"""Data retention: removes what rules.yaml's `retention:` no longer keeps, a small batch per
transaction, and records each run in the audit trail.

A run removes, in this order, processed raw events (and, kept as long, finished outgoing
webhooks and the API's idempotency records), messages (both directions) and closed tasks
(each with its outbox rows, messages and audit events). Failed and pending raw events
stay: they can still be retried. Each batch commits on its own, so a run that stops (its time
is up, an error, Ctrl-C) has removed whole batches and nothing half; the next run goes on.

The audit chain must account for every task that disappears: each batch of tasks records, in
its own transaction, a `retention` event listing them (`purged_tasks`), and the run ends with
one `retention` event that sums it all up (policy, cutoffs, removed, purged_tasks).

The worker runs it once a day (`retain_daily`), guarded by a Redis SET NX key per UTC day:
the sweeper already pays one such round trip per pass, where a look for the last `retention`
event would cost every worker a query every few seconds. If Redis loses the key the day's run
happens again, which is harmless: a run only removes what is past its cutoff.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.core.services import Services
from rules.config import RetentionPolicy
from store.db import Database
from store.events import Audit, record_event
from store.retention import (
    count_closed_tasks,
    count_finished_deliveries,
    count_idempotent_requests,
    count_kept_raw_events,
    count_messages,
    count_raw_events,
    delete_finished_deliveries,
    delete_idempotent_requests,
    delete_messages,
    delete_raw_events,
    delete_tasks,
    list_closed_tasks,
)

log = logging.getLogger(__name__)

ACTOR = "retention"  # the worker's name in the audit trail
ROWS_PER_BATCH = 500  # raw events or messages per transaction: locks held for milliseconds
TASKS_PER_BATCH = 50  # closed tasks per transaction: each takes its messages, events and outbox
# rows along, a dozen or so, which keeps a batch near ROWS_PER_BATCH rows
WORKER_SECONDS = 5.0  # a worker's run stops between batches after this; the next sweep goes
# on, so that a first run over a year of backlog never keeps a sweeper thread for long
DAY_KEY = "opsbot:retention:{}"  # + the UTC date: the day's run was done (or is under way)
DAY_KEY_TTL = 2 * 24 * 3600  # outlives its day; the next day has a key of its own

_COUNTERS: dict[str, Callable[..., int]] = {
    "raw_events": count_raw_events, "webhook_deliveries": count_finished_deliveries,
    "idempotent_requests": count_idempotent_requests, "messages": count_messages,
    "closed_tasks": count_closed_tasks,
}
# Records that go with raw events (store.retention): kept as long, removed right after them.
WITH_RAW_EVENTS = ("webhook_deliveries", "idempotent_requests")


@dataclass(frozen=True)
class Pace:
    """How a run proceeds: rows and tasks per transaction, and the seconds after which it stops
    between batches (None: when everything is done)."""

    rows: int = ROWS_PER_BATCH
    tasks: int = TASKS_PER_BATCH
    seconds: float | None = None


@dataclass
class RetentionReport:
    """What a run removed (a dry run: would remove), per kind that has a period."""

    dry_run: bool
    policy: dict[str, str]
    cutoffs: dict[str, datetime]
    removed: dict[str, int]
    kept_raw_events: int = 0  # failed or pending, older than the cutoff: retryable, kept
    purged_tasks: list[int] = field(default_factory=list)
    complete: bool = True  # False: the run stopped between batches; more is left

    def as_dict(self) -> dict[str, Any]:
        return {"policy": self.policy,
                "cutoffs": {kind: at.isoformat() for kind, at in self.cutoffs.items()},
                "removed": self.removed, "purged_tasks": self.purged_tasks,
                "kept_raw_events": self.kept_raw_events, "complete": self.complete,
                "dry_run": self.dry_run}


def run_retention(db: Database, policy: RetentionPolicy, *, now: datetime, dry_run: bool,
                  actor: str = ACTOR, pace: Pace = Pace()) -> RetentionReport:
    """Removes (a dry run: counts) what `policy` no longer keeps at `now`, one batch per
    transaction, and records the run as a `retention` audit event by `actor` (a dry run
    changes and records nothing). Returns the report; an empty policy does nothing."""
    periods = _with_transport_records(policy.periods())
    report = RetentionReport(
        dry_run=dry_run, policy={kind: _text(period) for kind, period in periods.items()},
        cutoffs={kind: now - period for kind, period in periods.items()},
        removed=dict.fromkeys(periods, 0))
    with db.transaction(readonly=True) as session:
        if "raw_events" in report.cutoffs:
            report.kept_raw_events = count_kept_raw_events(
                session, before=report.cutoffs["raw_events"])
        if dry_run:
            report.removed = {kind: _COUNTERS[kind](session, before=cutoff)
                              for kind, cutoff in report.cutoffs.items()}
    if dry_run or not periods:
        return report
    _remove(db, report, actor=actor, now=now, pace=pace)
    with db.transaction() as session:
        record_event(session, task=None, actor=actor, action=Audit.RETENTION,
                     details=report.as_dict(), at=now)
    return report


def _with_transport_records(periods: dict[str, timedelta]) -> dict[str, timedelta]:
    if "raw_events" not in periods:
        return periods
    kinds = list(periods)
    kinds[1:1] = WITH_RAW_EVENTS  # right after raw_events
    return {kind: periods.get(kind, periods["raw_events"]) for kind in kinds}


def _remove(db: Database, report: RetentionReport, *, actor: str, now: datetime,
            pace: Pace) -> None:
    stop_at = None if pace.seconds is None else time.monotonic() + pace.seconds
    for kind in report.cutoffs:
        size = pace.tasks if kind == "closed_tasks" else pace.rows
        while True:
            if stop_at is not None and time.monotonic() >= stop_at:
                report.complete = False
                return
            with db.transaction() as session:
                removed = _remove_batch(session, report, kind, size=size, actor=actor, now=now)
            report.removed[kind] += removed
            if removed < size:
                break


def _remove_batch(session: Session, report: RetentionReport, kind: str, *, size: int,
                  actor: str, now: datetime) -> int:
    cutoff = report.cutoffs[kind]
    if kind == "raw_events":
        return delete_raw_events(session, before=cutoff, limit=size)
    if kind == "webhook_deliveries":
        return delete_finished_deliveries(session, before=cutoff, limit=size)
    if kind == "idempotent_requests":
        return delete_idempotent_requests(session, before=cutoff, limit=size)
    if kind == "messages":
        return delete_messages(session, before=cutoff, limit=size)
    task_ids = list_closed_tasks(session, before=cutoff, limit=size)
    removed = delete_tasks(session, task_ids=task_ids)
    if task_ids:
        # in the same transaction: no task leaves the audit chain unaccounted for
        record_event(session, task=None, actor=actor, action=Audit.RETENTION, at=now,
                     details={"policy": report.policy, "purged_tasks": task_ids,
                              "batch": True, "dry_run": False})
        report.purged_tasks.extend(task_ids)
    return removed


def retain_daily(services: Services, *, now: datetime) -> RetentionReport | None:
    """The worker's daily run of the current rules' retention (see the module's docstring for
    the guard). Returns its report, or None when there is nothing to do today or another
    worker holds the day."""
    policy = services.rules.current.retention
    if not policy.periods():
        return None
    key = DAY_KEY.format(now.date().isoformat())
    if not services.redis.set(key, 1, nx=True, ex=DAY_KEY_TTL):
        return None
    try:
        report = run_retention(services.db, policy, now=now, dry_run=False,
                               pace=Pace(seconds=WORKER_SECONDS))
    except Exception:
        services.redis.delete(key)  # the next sweep tries again
        raise
    if not report.complete:
        services.redis.delete(key)  # the next sweep goes on where this run stopped
    log.info("retention removed %s (complete: %s)", report.removed, report.complete)
    return report


def _text(period: timedelta) -> str:
    """`30d`, `1d12h`: a period as rules.yaml writes it."""
    seconds = int(period.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)

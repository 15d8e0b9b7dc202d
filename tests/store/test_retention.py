"""Data retention on SQLite and PostgreSQL: the same data, the clock moved forward; a dry run
counts, a run removes in batches and records itself in the audit trail."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.usecases.retention import Pace, run_retention
from rules.config import RetentionPolicy
from store.apikeys import create_api_key
from store.events import Audit
from store.lifecycle import SYSTEM
from store.models import (
    EventStatus,
    IdempotentRequest,
    InboundEvent,
    Message,
    OutboxMessage,
    RuleDecision,
    Survey,
    Task,
    TaskEvent,
    TaskStatus,
    WebhookAttempt,
    WebhookDelivery,
)
from store.retention import count_kept_raw_events, delete_raw_events
from store.tasks import create_task
from store.webhooks import add_endpoint

# what goes with raw events, none in these tests (finished webhooks, idempotency records)
NOTHING_ELSE = {"webhook_deliveries": 0, "idempotent_requests": 0}

THEN = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # when the data was made
POLICY = RetentionPolicy(raw_events=timedelta(days=30), messages=timedelta(days=365),
                         closed_tasks=timedelta(days=730))


def add_events(session, statuses: dict[str, int], *, at: datetime = THEN) -> None:
    for status, count in statuses.items():
        session.add_all(InboundEvent(provider="whatsapp", provider_event_id=f"{status}-{i}-{at}",
                                     raw_body=b"{}", received_at=at, status=status)
                        for i in range(count))


def add_task(session, *, close: bool, at: datetime = THEN, messages: int = 2) -> Task:
    """A task made at `at` (closed then when `close`) with messages and an outbox row."""
    task = create_task(session, title="Pedido", category="ops", priority="normal",
                       actor=SYSTEM, now=at)
    if close:
        task.status, task.closed_at = TaskStatus.CLOSED, at
    session.add_all(Message(direction="outbound", task_id=task.id, created_at=at)
                    for _ in range(messages))
    session.add(OutboxMessage(dedupe_key=f"card-{task.id}", task_id=task.id, channel="slack",
                              kind="card"))
    session.flush()
    return task


def counts(db) -> dict[str, int]:
    with db.transaction(readonly=True) as session:
        return {model.__tablename__: session.scalar(select(func.count()).select_from(model))
                for model in (InboundEvent, Message, Task, OutboxMessage)}


def retention_events(db) -> list[TaskEvent]:
    with db.transaction(readonly=True) as session:
        query = select(TaskEvent).where(TaskEvent.action == Audit.RETENTION)
        return list(session.scalars(query.order_by(TaskEvent.id)))


@pytest.fixture
def data(db):
    """Processed, failed and pending raw events; one closed and one open task; all at THEN."""
    with db.transaction() as session:
        add_events(session, {EventStatus.PROCESSED: 3, EventStatus.FAILED: 2,
                             EventStatus.PENDING: 1})
        closed, open_ = add_task(session, close=True), add_task(session, close=False)
    return closed.id, open_.id


@pytest.mark.parametrize(
    ("days_later", "would_go"),
    [
        (29, {"raw_events": 0, **NOTHING_ELSE, "messages": 0, "closed_tasks": 0}),
        (31, {"raw_events": 3, **NOTHING_ELSE, "messages": 0, "closed_tasks": 0}),
        (366, {"raw_events": 3, **NOTHING_ELSE, "messages": 4, "closed_tasks": 0}),
        (731, {"raw_events": 3, **NOTHING_ELSE, "messages": 4, "closed_tasks": 1}),
    ],
)
def test_dry_run_counts_and_changes_nothing(db, data, days_later, would_go):
    before = counts(db)
    report = run_retention(db, POLICY, now=THEN + timedelta(days=days_later), dry_run=True)
    assert report.removed == would_go
    assert report.kept_raw_events == (3 if days_later > 30 else 0)
    assert counts(db) == before
    assert retention_events(db) == []


def test_run_removes_past_the_cutoffs_and_keeps_retryable_events(db, data):
    now = THEN + timedelta(days=31)
    report = run_retention(db, POLICY, now=now, dry_run=False)
    assert report.removed == {"raw_events": 3, **NOTHING_ELSE, "messages": 0, "closed_tasks": 0}
    assert report.kept_raw_events == 3
    with db.transaction(readonly=True) as session:
        statuses = session.scalars(select(InboundEvent.status)).all()
    assert sorted(statuses) == ["failed", "failed", "pending"]
    assert counts(db)["messages"] == 4

    again = run_retention(db, POLICY, now=now, dry_run=False)
    assert again.removed == {"raw_events": 0, **NOTHING_ELSE, "messages": 0, "closed_tasks": 0}


def test_closed_tasks_go_with_their_rows_and_are_listed_in_the_audit(db, data):
    closed_id, open_id = data
    policy = RetentionPolicy(closed_tasks=timedelta(days=730))
    report = run_retention(db, policy, now=THEN + timedelta(days=731), dry_run=False,
                           actor="cli")
    assert report.removed == {"closed_tasks": 1} and report.purged_tasks == [closed_id]
    with db.transaction(readonly=True) as session:
        assert session.scalars(select(Task.id)).all() == [open_id]
        for model in (Message, OutboxMessage):
            assert set(session.scalars(select(model.task_id))) == {open_id}
        kept = set(session.scalars(select(TaskEvent.task_id).where(TaskEvent.task_id.is_not(None))))
        assert kept == {open_id}
    batch, run = retention_events(db)
    assert (batch.task_id, batch.actor, batch.details["purged_tasks"]) == (None, "cli", [closed_id])
    assert run.details == {
        "policy": {"closed_tasks": "730d"},
        "cutoffs": {"closed_tasks": (THEN + timedelta(days=1)).isoformat()},
        "removed": {"closed_tasks": 1}, "purged_tasks": [closed_id], "kept_raw_events": 0,
        "complete": True, "dry_run": False,
    }


def decide(session, message: Message, task: Task | None) -> None:
    session.add(RuleDecision(message_id=message.id, task_id=task.id if task else None, at=THEN,
                             rules_sha256="0" * 64, effect="created", facts={},
                             contact_tags=[], outcome={}))


def test_recorded_decisions_and_surveys_go_with_their_messages_and_tasks(db):
    with db.transaction() as session:
        closed, open_ = add_task(session, close=True), add_task(session, close=False)
        for task in (closed, open_):
            decide(session, session.scalars(select(Message).where(Message.task_id == task.id)
                                            .limit(1)).one(), task)
        session.add(Survey(task_id=closed.id, due_at=THEN, status="answered"))
        loose = Message(direction="inbound", created_at=THEN + timedelta(days=400))
        session.add(loose)
        session.flush()
        decide(session, loose, None)
    run_retention(db, POLICY, now=THEN + timedelta(days=731), dry_run=False)
    with db.transaction(readonly=True) as session:
        assert session.scalars(select(Survey)).all() == []
        assert session.scalars(select(RuleDecision.message_id)).all() == [loose.id]


def test_run_goes_in_batches(db):
    with db.transaction() as session:
        add_events(session, {EventStatus.PROCESSED: 7})
        tasks = [add_task(session, close=True, messages=1).id for _ in range(5)]
    report = run_retention(db, POLICY, now=THEN + timedelta(days=800), dry_run=False,
                           pace=Pace(rows=3, tasks=2))
    assert report.removed == {"raw_events": 7, **NOTHING_ELSE, "messages": 5, "closed_tasks": 5}
    assert counts(db) == {"inbound_events": 0, "messages": 0, "tasks": 0, "outbox": 0}
    batches = [e.details["purged_tasks"] for e in retention_events(db)[:-1]]
    assert batches == [tasks[0:2], tasks[2:4], tasks[4:5]]
    assert retention_events(db)[-1].details["purged_tasks"] == tasks


def test_a_run_out_of_time_stops_between_batches(db):
    with db.transaction() as session:
        add_events(session, {EventStatus.PROCESSED: 4})
    report = run_retention(db, POLICY, now=THEN + timedelta(days=31), dry_run=False,
                           pace=Pace(rows=2, seconds=0))
    assert not report.complete and report.removed["raw_events"] == 0
    assert counts(db)["inbound_events"] == 4
    assert retention_events(db)[-1].details["complete"] is False


def test_delete_raw_events_takes_at_most_the_limit(db):
    with db.transaction() as session:
        add_events(session, {EventStatus.PROCESSED: 3, EventStatus.FAILED: 1})
    cutoff = THEN + timedelta(seconds=1)
    with db.transaction() as session:
        assert delete_raw_events(session, before=cutoff, limit=2) == 2
        assert delete_raw_events(session, before=THEN, limit=2) == 0  # not older than THEN
        assert count_kept_raw_events(session, before=cutoff) == 1


def test_empty_policy_does_nothing(db, data):
    report = run_retention(db, RetentionPolicy(), now=THEN + timedelta(days=999), dry_run=False)
    assert report.removed == {} and report.cutoffs == {}
    assert retention_events(db) == []


def test_finished_webhooks_and_idempotency_records_go_with_raw_events(db):
    now = THEN + timedelta(days=31)
    with db.transaction() as session:
        endpoint, _ = add_endpoint(session, url="https://crm.example/hook",
                                   events=["task.created"], now=THEN)
        key, _ = create_api_key(session, name="crm", scopes=["tasks:write"], agent_id=None,
                                now=THEN)
        for status in ("delivered", "failed", "cancelled", "pending"):
            session.add(WebhookDelivery(endpoint_id=endpoint.id, message_id=f"msg_{status}",
                                        type="task.created", payload={}, status=status,
                                        attempts=1, created_at=THEN))
        session.add(IdempotentRequest(api_key_id=key.id, key="k1", request_digest="d",
                                      status_code=200, response={}, created_at=THEN))
        session.flush()
        delivered = session.scalar(select(WebhookDelivery.id)
                                   .where(WebhookDelivery.status == "delivered"))
        session.add(WebhookAttempt(delivery_id=delivered, at=THEN, status_code=200))
    report = run_retention(db, RetentionPolicy(raw_events=timedelta(days=30)), now=now,
                           dry_run=False)
    assert report.removed == {"raw_events": 0, "webhook_deliveries": 3,
                              "idempotent_requests": 1}
    with db.transaction(readonly=True) as session:
        assert session.scalars(select(WebhookDelivery.status)).all() == ["pending"]
        assert session.scalar(select(func.count()).select_from(WebhookAttempt)) == 0

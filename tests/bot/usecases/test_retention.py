"""The worker's daily retention: once per UTC day across workers, on a real Redis."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import redis
from sqlalchemy import func, select

from bot.usecases import retention
from bot.usecases.retention import DAY_KEY, retain_daily
from rules.config import RetentionPolicy
from store.events import Audit
from store.models import EventStatus, InboundEvent, TaskEvent

# what goes with raw events, none in these tests (finished webhooks, idempotency records)
NOTHING_ELSE = {"webhook_deliveries": 0, "idempotent_requests": 0}

NOW = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)


@pytest.fixture
def services(db, redis_url):
    """What retain_daily uses of Services: the database, Redis and the current rules."""
    client = redis.Redis.from_url(redis_url)
    policy = RetentionPolicy(raw_events=timedelta(days=30))
    yield SimpleNamespace(db=db, redis=client, rules=SimpleNamespace(
        current=SimpleNamespace(retention=policy)))
    client.close()


def add_old_events(db, count: int) -> None:
    with db.transaction() as session:
        session.add_all(InboundEvent(provider="whatsapp", provider_event_id=f"e{i}",
                                     raw_body=b"{}", status=EventStatus.PROCESSED,
                                     received_at=NOW - timedelta(days=40)) for i in range(count))


def runs(db) -> int:
    with db.transaction(readonly=True) as session:
        query = select(func.count()).where(TaskEvent.action == Audit.RETENTION)
        return session.scalar(query)


def test_runs_once_per_day(services, db):
    add_old_events(db, 3)
    report = retain_daily(services, now=NOW)
    assert report is not None and report.removed == {"raw_events": 3, **NOTHING_ELSE}
    assert retain_daily(services, now=NOW + timedelta(hours=5)) is None  # same day, any worker
    assert services.redis.ttl(DAY_KEY.format("2026-06-01")) > 24 * 3600
    assert retain_daily(services, now=NOW + timedelta(days=1)) is not None
    assert runs(db) == 2


def test_an_unfinished_run_lets_the_next_sweep_go_on(services, db, monkeypatch):
    add_old_events(db, 3)
    monkeypatch.setattr(retention, "WORKER_SECONDS", 0)
    first = retain_daily(services, now=NOW)
    assert first is not None and not first.complete
    monkeypatch.setattr(retention, "WORKER_SECONDS", 5.0)
    second = retain_daily(services, now=NOW)
    assert second is not None and second.complete
    assert second.removed == {"raw_events": 3, **NOTHING_ELSE}


def test_nothing_to_do_without_a_policy(services):
    services.rules.current.retention = RetentionPolicy()
    assert retain_daily(services, now=NOW) is None
    assert not services.redis.exists(DAY_KEY.format("2026-06-01"))

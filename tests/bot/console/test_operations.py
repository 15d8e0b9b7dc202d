"""The operations screen: health (database, Redis, channels from the outbox), failed inbound
events retried, failed jobs requeued, failed deliveries listed; supervisors and admins only."""

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.webhooks.whatsapp import event_rows
from bot.worker.drains import WAITING_KEY
from bot.worker.process import make_worker
from store.inbound import insert_events
from store.models import (
    InboundEvent,
    OutboxMessage,
    OutboxStatus,
    WebhookAttempt,
    WebhookDelivery,
)
from store.outbox import add_outbox_message
from store.types import utcnow
from store.webhooks import add_endpoint
from tests.bot.console.kit import REDIS_DOWN, running_console


@pytest.fixture
def console(db, redis_url, tmp_path):
    with running_console(db, redis_url, tmp_path) as console:
        yield console


def part(page: str, name: str) -> str:
    """The health row of `name` (database, redis, slack…)."""
    return re.search(rf'<tr data-part="{name}">(.*?)</tr>', page, re.S).group(1)


def failed_event(console) -> int:
    with console.db.transaction() as session:
        insert_events(session, rows=event_rows(b"{not json"))
        return session.scalar(select(InboundEvent.id))


def event_status(console, event_id: int) -> str:
    with console.db.transaction(readonly=True) as session:
        return session.get(InboundEvent, event_id).status


def test_an_admin_sees_health_and_every_list(console):
    console.sign_in("admin")
    page = console.get("/operations")
    assert page.status_code == 200, page.text
    assert "health-ok" in part(page.text, "database") and "health-ok" in part(page.text, "redis")
    assert "nothing sent yet" in part(page.text, "slack")
    assert "nothing sent yet" in part(page.text, "telegram")
    assert 'data-part="whatsapp"' not in page.text  # WhatsApp is off here
    for empty in ("No failed events.", "No failed jobs.", "Every message went out.",
                  "No failed webhook deliveries."):
        assert empty in page.text


@pytest.mark.parametrize("role, agent, status", [
    ("agent", "ana", 403), ("supervisor", "marta", 200), ("admin", None, 200)])
def test_supervisors_and_admins_only(console, role, agent, status):
    console.sign_in(role, agent=agent)
    page = console.get("/operations")
    assert page.status_code == status
    assert "Traceback" not in page.text
    assert console.post("/operations/events/retry-all").status_code == (
        403 if status == 403 else 200)


def test_a_failed_event_is_listed_and_retried(console):
    event_id = failed_event(console)
    console.sign_in("supervisor", agent="marta")
    page = console.get("/operations").text
    row = re.search(rf'<tr data-event="{event_id}">(.*?)</tr>', page, re.S).group(1)
    assert "unreadable" in row and "not JSON" in row and ">Retry<" in row

    refused = console.post(f"/operations/events/{event_id}/retry", token=False)
    assert refused.status_code == 403 and event_status(console, event_id) == "failed"

    console.services.redis.delete(WAITING_KEY)
    retried = console.post(f"/operations/events/{event_id}/retry")
    assert retried.status_code == 200
    assert "1 event(s) queued again." in retried.text
    assert event_status(console, event_id) == "pending"
    assert console.services.redis.exists(WAITING_KEY)  # a drain was asked for
    again = console.post(f"/operations/events/{event_id}/retry")
    assert '<p class="error" role="alert">0 event(s) queued again.</p>' in again.text


def test_retry_all(console):
    failed_event(console)
    with console.db.transaction() as session:
        insert_events(session, rows=event_rows(b"[also not a body"))
        ids = list(session.scalars(select(InboundEvent.id)))
    console.sign_in("admin")
    done = console.post("/operations/events/retry-all")
    assert "2 event(s) queued again." in done.text
    assert [event_status(console, i) for i in ids] == ["pending", "pending"]


def test_a_failed_job_is_listed_and_requeued(console):
    jobs = console.services.jobs
    jobs.queue.enqueue("json.loads", "{not json", job_id="broken-1")  # no Retry
    make_worker(console.services).work(burst=True, logging_level="WARNING")
    console.sign_in("admin")
    page = console.get("/operations").text
    row = re.search(r'<tr data-job="broken-1">(.*?)</tr>', page, re.S).group(1)
    assert "json.loads({not json)" in row and "JSONDecodeError" in row

    assert console.post("/operations/jobs/broken-1/requeue", token=False).status_code == 403
    requeued = console.post("/operations/jobs/broken-1/requeue")
    assert "Job broken-1 is back on the queue." in requeued.text
    assert jobs.queue.get_job_ids() == ["broken-1"]
    missing = console.post("/operations/jobs/broken-1/requeue")
    assert "Job broken-1 is not among the failed jobs." in missing.text


def test_failed_deliveries_and_each_channels_latest(console):
    now = utcnow()
    with console.db.transaction() as session:
        sent = add_outbox_message(session, dedupe_key="a", channel="slack", kind="assigned",
                                  payload={})
        sent.status, sent.sent_at = OutboxStatus.SENT, now - timedelta(hours=2)
        lost = add_outbox_message(session, dedupe_key="b", channel="slack", kind="assigned",
                                  payload={})
        lost.status, lost.last_error, lost.attempts = OutboxStatus.FAILED, "channel_not_found", 3
        lost.dispatched_at = now - timedelta(hours=1)
        good = add_outbox_message(session, dedupe_key="c", channel="telegram", kind="assigned",
                                  payload={})
        good.status, good.sent_at = OutboxStatus.SENT, now
        endpoint, _ = add_endpoint(session, url="https://crm.example.com/hook",
                                   events=["task.created"], now=now)
        delivery = WebhookDelivery(endpoint_id=endpoint.id, message_id="msg_1",
                                   type="task.created", payload={}, status="failed", attempts=8)
        session.add(delivery)
        session.flush()
        session.add(WebhookAttempt(delivery_id=delivery.id, status_code=500))
        lost_id, delivery_id = lost.id, delivery.id
    console.sign_in("admin")
    page = console.get("/operations").text
    slack, telegram = part(page, "slack"), part(page, "telegram")
    assert "failing" in slack and "health-bad" in slack
    assert "health-ok" in telegram
    row = re.search(rf'<tr data-outbox="{lost_id}">(.*?)</tr>', page, re.S).group(1)
    assert "channel_not_found" in row and ">3<" in row and "slack" in row
    hook = re.search(rf'<tr data-delivery="{delivery_id}">(.*?)</tr>', page, re.S).group(1)
    assert "HTTP 500" in hook and "crm.example.com" in hook and "task.created" in hook
    with console.db.transaction(readonly=True) as session:
        assert session.scalar(select(OutboxMessage.status).where(
            OutboxMessage.id == lost_id)) == "failed"  # looking changes nothing


def test_health_with_redis_down(db, tmp_path):
    with running_console(db, REDIS_DOWN, tmp_path) as console:
        console.sign_in("admin")
        page = console.get("/operations")
        assert page.status_code == 200, page.text
        redis = part(page.text, "redis")
        assert "health-bad" in redis and "does not answer" in redis
        assert "health-ok" in part(page.text, "database")
        assert "Redis does not answer: failed jobs cannot be listed." in page.text
        refused = console.post("/operations/jobs/x/requeue")
        assert "Redis does not answer: nothing was requeued." in html.unescape(refused.text)

"""Delivery of agent notifications through the outbox to the fake Slack and Telegram APIs."""

import time

import pytest
from rq import SimpleWorker
from sqlalchemy import select

from bot.core import tunables
from bot.core.jobs import DELIVER, RetryPolicy
from bot.usecases import delivery
from bot.usecases.delivery import Delivered, DeliveryOutcome
from bot.worker.entrypoints import install_services
from bot.worker.retries import deliver
from notifiers.queueing import queue_card_updates, queue_notification
from sandbox import FakeSlack, FakeTelegram
from store.events import Audit
from store.models import OutboxMessage, OutboxStatus, TaskEvent
from tests.bot.fixtures import make_services, make_settings
from tests.notifiers.helpers import NOW, make_task

SENT = Delivered(DeliveryOutcome.SENT)


@pytest.fixture
def fakes():
    with FakeSlack() as slack, FakeTelegram() as telegram:
        yield slack, telegram


@pytest.fixture
def services(fakes, db, redis_url, tmp_path):
    slack, telegram = fakes
    settings = make_settings(
        tmp_path, database_url=db.url, redis_url=redis_url, slack=slack, telegram=telegram
    )
    built = make_services(settings, db)
    yield built
    built.redis.close()
    install_services(None)


def notify(services, agent_id, kind="assigned", key="k1"):
    with services.db.transaction() as session:
        task = make_task(session, assignee=agent_id)
        row = queue_notification(
            session,
            config=services.rules.current,
            kind=kind,
            task=task,
            agent_id=agent_id,
            dedupe_key=key,
        )
        return row.id


def row_of(services, outbox_id):
    with services.db.transaction() as session:
        return session.get(OutboxMessage, outbox_id)


def test_a_card_with_buttons_reaches_the_agent_on_slack(services, fakes):
    slack, _ = fakes
    outbox_id = notify(services, "ana")
    assert deliver(services, outbox_id) == SENT
    [post] = slack.sent_messages()
    assert post["channel"] == slack.dm_channel("U0ANA")
    actions = next(b for b in post["blocks"] if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == [
        "opsbot:accept:T-1",
        "opsbot:decline:T-1",
    ]
    row = row_of(services, outbox_id)
    assert row.status == OutboxStatus.SENT
    [(channel, message)] = slack.posted()
    assert (row.provider_chat_id, row.provider_message_id) == (channel, message["ts"])
    assert deliver(services, outbox_id) == Delivered(DeliveryOutcome.SKIPPED)
    assert len(slack.sent_messages()) == 1


def test_preferred_telegram_gets_an_inline_keyboard(services, fakes):
    _, telegram = fakes
    outbox_id = notify(services, "marta")
    assert deliver(services, outbox_id) == SENT
    [sent] = telegram.sent_messages(333)
    keyboard = sent["reply_markup"]["inline_keyboard"][0]
    assert [b["callback_data"] for b in keyboard] == ["accept:T-1", "decline:T-1"]
    assert sent["parse_mode"] == "HTML" and "<b>New task T-1" in sent["text"]
    row = row_of(services, outbox_id)
    assert (row.provider_chat_id, row.provider_message_id) == ("333", "1")


def test_slack_500_three_times_then_success_delivers_once(services, fakes):
    slack, _ = fakes
    slack.fail_next(3, status=500, match="chat.postMessage")
    outbox_id = notify(services, "ana")
    assert deliver(services, outbox_id) == SENT
    posts = slack.calls("chat.postMessage")
    assert [p.status for p in posts] == [500, 500, 500, 200]
    assert len(slack.sent_messages()) == 1


def test_a_429_with_retry_after_is_waited_out(services, fakes):
    slack, _ = fakes
    slack.fail_next(1, status=429, retry_after=1, match="chat.postMessage")
    outbox_id = notify(services, "ana")
    started = time.monotonic()
    assert deliver(services, outbox_id) == SENT
    assert time.monotonic() - started >= 1.0
    first, second = slack.calls("chat.postMessage")
    assert (first.status, second.status) == (429, 200)
    assert (second.at - first.at).total_seconds() >= 1.0


def test_telegram_429_is_waited_out(services, fakes):
    _, telegram = fakes
    telegram.fail_next(1, status=429, retry_after=1, match="sendMessage")
    outbox_id = notify(services, "marta")
    assert deliver(services, outbox_id) == SENT
    assert [c.status for c in telegram.calls("sendMessage")] == [429, 200]


def test_a_permanent_refusal_falls_back_to_the_other_channel(services, fakes):
    slack, telegram = fakes
    slack.fail_next(
        1, status=200, match="conversations.open", body={"ok": False, "error": "user_not_found"}
    )
    outbox_id = notify(services, "ana")
    assert deliver(services, outbox_id) == Delivered(DeliveryOutcome.SENT, ("telegram",))
    assert len(telegram.sent_messages(111)) == 1 and slack.sent_messages() == []
    row = row_of(services, outbox_id)
    assert (row.channel, row.status) == ("telegram", OutboxStatus.SENT)
    with services.db.transaction() as session:
        [event] = session.scalars(
            select(TaskEvent).where(TaskEvent.action == Audit.DELIVERY_FAILED)
        )
        assert event.task_id == row.task_id and event.details["fallback"] == "telegram"


def test_nowhere_left_marks_the_row_failed(services, fakes):
    slack, _ = fakes
    slack.fail_next(
        1, status=200, match="conversations.open", body={"ok": False, "error": "user_not_found"}
    )
    outbox_id = notify(services, "pablo")  # Slack only
    assert deliver(services, outbox_id) == Delivered(DeliveryOutcome.FAILED)
    assert row_of(services, outbox_id).status == OutboxStatus.FAILED


def test_the_card_is_updated_in_place(services, fakes):
    slack, telegram = fakes
    slack_card, telegram_card = notify(services, "ana", key="a"), notify(services, "marta", key="b")
    for outbox_id in (slack_card, telegram_card):
        deliver(services, outbox_id)
    with services.db.transaction() as session:
        task = session.get(OutboxMessage, slack_card).task_id
        from store.tasks import get_task

        updates = queue_card_updates(
            session,
            task=get_task(session, ref=task),
            line="Accepted by Ana García at 10:00",
            now=NOW,
        )
        ids = [row.id for row in updates]
    assert len(ids) == 1  # only the card about that task
    assert deliver(services, ids[0]) == SENT
    [update] = slack.calls("chat.update")
    assert update.params["ts"] == row_of(services, slack_card).provider_message_id
    assert "Accepted by Ana García at 10:00" in update.params["text"]


def test_rq_worker_runs_the_delivery_job(services, fakes):
    slack, _ = fakes
    outbox_id = notify(services, "ana")
    install_services(services)
    services.jobs.enqueue(DELIVER, outbox_id, job_id=f"outbox-{outbox_id}")
    SimpleWorker([services.jobs.queue], connection=services.redis).work(burst=True)
    assert row_of(services, outbox_id).status == OutboxStatus.SENT
    assert len(slack.sent_messages()) == 1


def test_a_team_post_goes_to_the_team_channel(services, fakes):
    slack, _ = fakes
    with services.db.transaction() as session:
        task = make_task(session, assignee="ana")
        row = queue_notification(session, config=services.rules.current, kind="breach",
                                 task=task, agent_id=None, dedupe_key="breach-1",
                                 details={"step": "notify_supervisor", "agent": "ana"})
        outbox_id = row.id
    assert deliver(services, outbox_id) == SENT
    [post] = slack.sent_messages("C0LOGI")
    assert post["text"].startswith("SLA breached on T-1")
    assert slack.calls("conversations.open") == []


def test_failing_for_good_after_the_last_run_falls_back(services, fakes, monkeypatch):
    from notifiers.errors import TransientDeliveryError

    monkeypatch.setattr(tunables, "BACKOFF", (0, 0, 0))
    monkeypatch.setattr(delivery, "RETRY", RetryPolicy((0, 0)))  # two runs
    slack, telegram = fakes
    slack.fail_next(100, status=503, match="chat.postMessage")
    outbox_id = notify(services, "ana")
    with pytest.raises(TransientDeliveryError):
        deliver(services, outbox_id)  # run 1: RQ would retry it later
    assert row_of(services, outbox_id).attempts == 1
    assert deliver(services, outbox_id) == Delivered(DeliveryOutcome.SENT, ("telegram",))
    assert len(slack.calls("chat.postMessage")) == 8 and len(telegram.sent_messages(111)) == 1


def test_a_long_retry_after_reschedules_the_delivery(services, fakes):
    slack, _ = fakes
    slack.fail_next(1, status=429, retry_after=120, match="chat.postMessage")
    outbox_id = notify(services, "ana")
    assert deliver(services, outbox_id).outcome is DeliveryOutcome.RESCHEDULED
    scheduled = services.jobs.queue.scheduled_job_registry.get_job_ids()
    assert [job for job in scheduled if job.startswith(f"outbox-{outbox_id}-at-")]
    assert row_of(services, outbox_id).status == OutboxStatus.PENDING

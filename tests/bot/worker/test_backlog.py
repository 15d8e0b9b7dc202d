"""A backlog of old messages (Meta redelivers for days after an outage), run end to end by
real workers: each late task is marked once, its supervisor gets one summary card per team,
and nothing escalates; a fresh message of the same run keeps its normal timers."""

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.core import tunables
from bot.worker.drains import request_drain
from bot.worker.process import make_worker
from notifiers.notifications import Notification
from rules import prepare_language_detection
from sandbox.inbound import whatsapp_message
from store.events import Audit
from store.inbound import insert_events
from store.models import OutboxMessage, Task, TaskEvent
from store.types import utcnow
from tests.bot.workers_support import make_services, write_rules

RULES = """\
version: 1
timezone: UTC
business_hours: {mon-sun: "00:00-24:00"}
sla:
  normal: {first_response: 1h, resolution: 8h, business_hours: false}
escalation: {remind_at: [50%, 80%], unaccepted_after: 30m,
             on_breach: [notify_supervisor, reassign, raise_priority]}
teams:
  ops: {supervisor: sam}
  billing: {supervisor: bea}
agents:
  - {id: ana, name: Ana, teams: [ops], slack: U0ANA, capacity: 100}
  - {id: bob, name: Bob, teams: [billing], slack: U0BOB, capacity: 100}
  - {id: sam, name: Sam, slack: U0SAM}
  - {id: bea, name: Bea, slack: U0BEA}
rules:
  - name: invoices
    when: {keywords: [factura]}
    then: {team: billing}
  - name: fallback
    then: {team: ops}
"""

ESCALATION_KINDS = ("breach", "reminder", "reassigned_away")


def store_messages(services, texts: list[str], *, sent_ago: timedelta) -> None:
    """Stores one customer message per text (one customer each) as intake does: one
    single-item envelope per row."""
    sent = utcnow() - sent_ago
    rows = []
    for number, text in enumerate(texts):
        wa_id, wamid = f"3460{sent_ago.days}{number:07d}", f"wamid.BACKLOG{sent_ago.days}x{number}"
        body = whatsapp_message(wa_id=wa_id, name=f"Cliente {number}", phone_id="PHONE",
                                message={"type": "text", "text": {"body": text}},
                                timestamp=int(sent.timestamp()), wamid=wamid)
        rows.append(dict(provider="whatsapp", provider_event_id=wamid, kind="message",
                         contact_key=wa_id, occurred_at=sent.replace(microsecond=0),
                         raw_body=json.dumps(body).encode()))
    with services.db.transaction() as session:
        insert_events(session, rows=rows)


def work_for(services, seconds: float) -> None:
    """Burst workers (with the scheduler) in a loop for `seconds`: the late summary and any
    timer already due fire meanwhile."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        make_worker(services).work(burst=True, with_scheduler=True, logging_level="WARNING")
        time.sleep(0.1)


def count(services, query) -> int:
    with services.db.transaction() as session:
        return session.scalar(query)


def cards(services, kind: str) -> list[OutboxMessage]:
    with services.db.transaction() as session:
        query = select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
        return list(session.scalars(query))


def events(services, action: str) -> int:
    return count(services, select(func.count()).where(TaskEvent.action == action))


@pytest.mark.timeout(60)
def test_a_backlog_of_old_messages_gives_one_summary_per_team_and_no_storm(
        database_url, redis_url, tmp_path, monkeypatch):
    # The window must outlast applying the 40 late messages (two drain batches) on a busy
    # machine, else a second window opens and its summary is a second card.
    monkeypatch.setattr(tunables, "LATE_SUMMARY", timedelta(seconds=3))
    services = make_services(database_url, redis_url, write_rules(tmp_path, RULES))
    prepare_language_detection(services.rules.current)  # as a worker does at start
    texts = [f"hola, pedido {n}" for n in range(30)] + [f"mi factura {n}" for n in range(10)]
    store_messages(services, texts, sent_ago=timedelta(days=2))
    store_messages(services, ["hola, ¿dónde está mi pedido?"], sent_ago=timedelta(0))
    request_drain(services)

    work_for(services, 6)

    observed = {
        "tasks": count(services, select(func.count(Task.id))),
        "arrived_late": events(services, Audit.ARRIVED_LATE),
        **{action: events(services, action)
           for action in (Audit.ESCALATED, Audit.UNROUTED, Audit.REMINDER)},
        **{f"{kind} cards": len(cards(services, kind))
           for kind in (*ESCALATION_KINDS, "late_summary", "assigned")},
    }
    assert observed == {
        "tasks": 41, "arrived_late": 40, "escalated": 0, "unrouted": 0, "reminder": 0,
        "breach cards": 0, "reminder cards": 0, "reassigned_away cards": 0,
        "late_summary cards": 2,  # one per team
        "assigned cards": 41,  # each task is routed as usual
    }
    summaries = cards(services, "late_summary")
    assert sorted(row.agent_id for row in summaries) == ["bea", "sam"]
    by_agent = {row.agent_id: Notification.from_dict(row.payload["notification"])
                for row in summaries}
    assert by_agent["sam"].title.startswith("30 messages arrived late (oldest sent 2 days ago)")
    assert by_agent["bea"].title.startswith("10 messages arrived late (oldest sent 2 days ago)")

    with services.db.transaction() as session:
        fresh = session.scalars(select(Task).order_by(Task.id.desc())).first()
        late = session.scalars(select(TaskEvent).where(
            TaskEvent.action == Audit.ARRIVED_LATE, TaskEvent.task_id == fresh.id)).all()
        fresh_id = fresh.id
    assert late == []  # the fresh message is on time
    assert by_agent["sam"].text and f"T-{fresh_id}" not in by_agent["sam"].text
    planned = {member.decode().rsplit("-", 1)[0]
               for member in services.redis.hkeys(f"opsbot:timers:{fresh_id}")}
    assert {f"timer-{fresh_id}-breach-first_response",
            f"timer-{fresh_id}-breach-resolution"} <= planned
    services.close()

"""Tasks born late: marked once with the reason, routed as usual, gathered per team into one
summary window, and summarised once per team when the window's timer fires."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.core import tunables
from bot.usecases.conversation import apply_message
from bot.usecases.escalation import TimerOutcome, fire_timer, sla_clock
from bot.whatsapp.parsing import InboundMessage
from notifiers.notifications import Notification
from rules import parse_rules, plan_timers
from rules.sla import LATE_SUMMARY
from store.events import Audit, list_events
from store.lifecycle import Action
from store.models import OutboxMessage, Task

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
WINDOW = tunables.LATE_SUMMARY
RULES = """
version: 1
timezone: UTC
business_hours: {mon-sun: "00:00-24:00"}
sla: {normal: {first_response: 1h, resolution: 8h, business_hours: false}}
teams:
  support: {supervisor: sam}
  billing: {supervisor: bea}
agents:
  - {id: ana, name: Ana, teams: [support], slack: U0ANA, capacity: 50}
  - {id: bob, name: Bob, teams: [billing], slack: U0BOB, capacity: 50}
  - {id: sam, name: Sam, slack: U0SAM}
  - {id: bea, name: Bea, slack: U0BEA}
  - {id: root, name: Root, slack: U0ROOT, admin: true}
rules:
  - name: invoices
    when: {keywords: [factura]}
    then: {team: billing}
  - name: prices
    when: {keywords: [precio]}
    then: {category: sales}
  - name: fallback
    then: {team: support}
"""


@pytest.fixture
def config():
    return parse_rules(RULES)


def message(number: int, *, sent: datetime, text: str = "¿dónde está mi pedido?"):
    return InboundMessage(wamid=f"wamid.L{number}", wa_id=f"3460000020{number:02d}",
                          user_id=None, name=f"Cliente {number}", type="text", at=sent,
                          text=text)


def receive(db, config, number: int, *, sent: datetime, now: datetime, text: str = "pedido"):
    """Applies one customer message in its own transaction; returns its task's id."""
    with db.transaction() as session:
        assert apply_message(session, config=config, message=message(
            number, sent=sent, text=text), now=now) == "created"
        return session.scalars(select(Task.id).order_by(Task.id.desc())).first()


def test_an_old_message_makes_a_task_marked_late_once_with_the_reason(db, config):
    task_id = receive(db, config, 1, sent=NOW - timedelta(days=2), now=NOW)
    with db.transaction() as session:
        task = session.get(Task, task_id)
        events = list_events(session, task_id=task_id)
        assert [e.action for e in events] == [
            Audit.CREATED, Audit.ARRIVED_LATE, Action.ASSIGN, Audit.ROUTED]
        late = events[1].details
        assert late["reason"] == (
            "arrived late: sent 2026-11-22 10:00 UTC, received 2026-11-24 10:00 UTC; "
            "first response due 2026-11-22 11:00 UTC, resolution due 2026-11-22 18:00 UTC "
            "had already passed")
        assert late["missed"] == {"first_response": "2026-11-22T11:00:00+00:00",
                                  "resolution": "2026-11-22T18:00:00+00:00"}
        assert task.late_summary_at == NOW + WINDOW
        assert task.assignee_id == "ana"  # routed as usual
        # nothing escalates for the missed deadlines: only the offer and the summary
        assert [t.kind for t in plan_timers(config, sla_clock(task), now=NOW)] == [
            "unaccepted", LATE_SUMMARY]
        [card] = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "assigned"))
        fields = dict(Notification.from_dict(card.payload["notification"]).fields)
        assert fields["SLA"] == "breached: arrived late"


def test_a_message_only_late_for_its_first_response_keeps_its_resolution_timers(db, config):
    task_id = receive(db, config, 1, sent=NOW - timedelta(hours=2), now=NOW)
    with db.transaction() as session:
        task = session.get(Task, task_id)
        [late] = list_events(session, task_id=task_id, action=Audit.ARRIVED_LATE)
        assert list(late.details["missed"]) == ["first_response"]
        kinds = [t.kind for t in plan_timers(config, sla_clock(task), now=NOW)]
        assert kinds == ["unaccepted", "remind-resolution-50", "remind-resolution-80",
                         "breach-resolution", LATE_SUMMARY]


def test_an_on_time_message_is_not_marked(db, config):
    task_id = receive(db, config, 1, sent=NOW - timedelta(minutes=10), now=NOW)
    with db.transaction() as session:
        assert session.get(Task, task_id).late_summary_at is None
        assert list_events(session, task_id=task_id, action=Audit.ARRIVED_LATE) == []


def test_late_tasks_of_a_team_share_one_summary_window(db, config):
    old = NOW - timedelta(days=2)
    first = receive(db, config, 1, sent=old, now=NOW)
    joined = receive(db, config, 2, sent=old, now=NOW + WINDOW / 2)
    billing = receive(db, config, 3, sent=old, now=NOW + WINDOW / 2, text="mi factura")
    after = receive(db, config, 4, sent=old, now=NOW + WINDOW + timedelta(seconds=1))
    with db.transaction() as session:
        summary = {i: session.get(Task, i).late_summary_at for i in (first, joined, billing,
                                                                      after)}
    assert summary == {first: NOW + WINDOW, joined: NOW + WINDOW,  # the team's open window
                       billing: NOW + WINDOW * 3 / 2,  # another team: a window of its own
                       after: NOW + WINDOW * 2 + timedelta(seconds=1)}  # the first one ended


def summaries(session) -> dict[str, Notification]:
    rows = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "late_summary"))
    return {row.agent_id: Notification.from_dict(row.payload["notification"]) for row in rows}


def test_the_summary_is_queued_once_per_team_by_the_first_timer_that_fires(db, config):
    old = NOW - timedelta(days=2)
    ids = [receive(db, config, n, sent=old - timedelta(hours=n), now=NOW) for n in range(3)]
    ids += [receive(db, config, 3, sent=old, now=NOW, text="mi factura")]
    ids += [receive(db, config, 4, sent=old, now=NOW, text="precio")]  # no team: the admins
    fired_at = NOW + WINDOW
    outcomes = []
    for task_id in ids:
        with db.transaction() as session:
            task = session.get(Task, task_id)
            outcomes.append(fire_timer(
                session, config=config, task_id=task_id, kind=LATE_SUMMARY,
                generation=task.timer_generation, at_iso=task.late_summary_at.isoformat(),
                now=fired_at))
    assert outcomes == [TimerOutcome.SUMMARIZED, TimerOutcome.ALREADY_DONE,
                        TimerOutcome.ALREADY_DONE, TimerOutcome.SUMMARIZED,
                        TimerOutcome.SUMMARIZED]
    with db.transaction() as session:
        cards = summaries(session)
    assert sorted(cards) == ["bea", "root", "sam"]
    refs = [f"T-{task_id}" for task_id in ids]
    assert cards["sam"].title == "3 messages arrived late (oldest sent 2 days ago)"
    assert cards["sam"].text.startswith(f"Team support: {', '.join(refs[:3])}. ")
    assert "SLA breach (arrived late)" in cards["sam"].text
    assert cards["bea"].title == "1 message arrived late (oldest sent 2 days ago)"
    assert cards["bea"].text.startswith(f"Team billing: {refs[3]}. ")
    assert cards["root"].text.startswith(f"{refs[4]}. ")

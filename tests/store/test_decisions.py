"""store.decisions.read_decisions: the recorded decisions of a period, oldest first, in
batches, with the customer's text and Flow answers opened (None once they were erased) and
the agent of the customer's previous task for sticky routing."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from store import crypto, decisions
from store.contacts import upsert_contact
from store.decisions import read_decisions, record_decision
from store.gdpr import erase_contact
from store.lifecycle import SYSTEM
from store.messages import record_inbound_message
from store.models import Contact, DataKey, Task
from store.tasks import create_task

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
FLOW = {"flow": {"name": "alta", "token": "alta:1", "fields": {"plan": "pro"}}}


def add(session, wa_id: str, text: str | None, minutes: int, *, effect: str = "created",
        assignee: str | None = None, flow: bool = False) -> int:
    """One message of customer `wa_id` with its decision; a created task when `effect` says
    so (assigned to `assignee`). Returns the decision's message id."""
    at = NOW + timedelta(minutes=minutes)
    contact, _ = upsert_contact(session, wa_id=wa_id, user_id=None, name="Cliente", now=at)
    contact.tags = ["vip"]
    task = None
    if effect == "created":
        task = create_task(session, title="t", category="support", priority="normal",
                           actor=SYSTEM, contact_id=contact.id, now=at, assignee_id=assignee)
    message = record_inbound_message(
        session, provider_message_id=f"wamid.{wa_id}.{minutes}", contact_id=contact.id,
        type="flow" if flow else "text", text=text, media_id=None,
        payload=FLOW if flow else {"parsed_by": "pywa"}, at=at,
        task_id=task.id if task else None)
    record_decision(session, message_id=message.id, contact_id=contact.id,
                    task_id=task.id if task else None, at=at, rules_sha256="a" * 64,
                    effect=effect, facts={"type": "flow" if flow else "text"},
                    contact_tags=list(contact.tags), outcome={"team": "support"},
                    agents={"ana": [False, 1, None]} if task else None)
    session.flush()
    return message.id


@pytest.fixture
def traffic(db):
    with db.transaction() as session:
        add(session, "34600000001", "Mi pedido 4411", 0, assignee="ana")
        add(session, "34600000002", "Hola", 10, assignee="bob")
        add(session, "34600000001", "Otra vez el pedido", 20, assignee=None)
        add(session, "34600000001", "gracias", 30, effect="ignored")
        add(session, "34600000002", None, 40, flow=True)
        add(session, "34600000001", "¿Y ahora?", 50, assignee="marta")
    return db


def read(db, since=NOW, until=NOW + timedelta(hours=1)):
    with db.transaction(readonly=True) as session:
        return list(read_decisions(session, since=since, until=until))


def test_decisions_come_oldest_first_with_their_texts(traffic):
    found = read(traffic)
    assert [d.text for d in found] == ["Mi pedido 4411", "Hola", "Otra vez el pedido",
                                       "gracias", "", "¿Y ahora?"]
    assert [d.effect for d in found] == ["created"] * 3 + ["ignored", "created", "created"]
    first = found[0]
    assert (first.at, first.tags, first.outcome, first.agents) == (
        NOW, ["vip"], {"team": "support"}, {"ana": [False, 1, None]})
    assert first.facts == {"type": "text"} and first.flow_fields is None
    assert [d.routed_at for d in found] == [NOW + timedelta(minutes=m) for m in (0, 10, 20)] + [
        None, NOW + timedelta(minutes=40), NOW + timedelta(minutes=50)]


def test_a_flow_brings_its_answers(traffic):
    flow = read(traffic)[4]
    assert flow.flow_fields == {"plan": "pro"}


def test_the_previous_agent_is_the_latest_earlier_task_with_one(traffic):
    # customer 1: T1 ana, T3 unassigned, (ignored), T5 marta; customer 2: T2 bob, T4
    assert [d.last_agent for d in read(traffic)] == [None, None, "ana", None, "bob", "ana"]


def test_the_period_is_half_open(traffic):
    found = read(traffic, since=NOW + timedelta(minutes=10), until=NOW + timedelta(minutes=30))
    assert [d.text for d in found] == ["Hola", "Otra vez el pedido"]


def test_decisions_are_read_in_batches(traffic, monkeypatch):
    monkeypatch.setattr(decisions, "READ_BATCH", 2)
    assert len(read(traffic)) == 6


def test_an_erased_customer_has_no_text_no_answers_no_tags(traffic):
    with traffic.transaction() as session:
        erase_contact(session, wa_id="34600000002", actor="admin", reason="asked", now=NOW)
    found = read(traffic)
    erased = [d for d in found if d.tags is None]
    assert [(d.text, d.flow_fields) for d in erased] == [(None, None), (None, None)]
    assert all(d.text is not None for d in found if d.tags is not None)
    assert [d.task_id is not None for d in erased] == [True, True]


def test_reading_changes_nothing(traffic):
    with traffic.transaction(readonly=True) as session:
        before = session.query(Task.id, Task.assignee_id).order_by(Task.id).all()
    read(traffic)
    with traffic.transaction(readonly=True) as session:
        assert session.query(Task.id, Task.assignee_id).order_by(Task.id).all() == before


def test_a_text_whose_key_is_gone_reads_as_unknown(traffic):
    with traffic.transaction() as session:
        contact = session.scalars(select(Contact).order_by(Contact.id)).first()
        session.execute(update(DataKey).where(DataKey.id == contact.data_key_id)
                        .values(wrapped=None))
        crypto.forget_data_key(contact.data_key_id)
    found = read(traffic)
    assert [d.text for d in found if d.contact_id == contact.id] == [None] * 4
    assert all(d.tags == ["vip"] for d in found)  # not erased: only the text is unknown

"""The demo's timeline: entries in the order things happened (sub-second instants, the audit's
own order within one instant), phrased for people, Telegram cards in full, and streamed while
the run goes on rather than printed at its end."""

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.cli.demo import DEFAULT_SCENARIO
from rules import load_rules
from sandbox.graph import FakeGraph
from sandbox.scenario import load_scenario
from sandbox.slack import FakeSlack
from sandbox.stack import PHONE_ID
from sandbox.telegram import FakeTelegram
from sandbox.timeline import Entry, Timeline, build_timeline, streaming
from store.events import record_event
from store.lifecycle import SYSTEM
from store.models import Contact, Direction, InboundEvent, Message
from store.tasks import create_task

T0 = datetime(2026, 11, 24, 9, 0, 5, 250000, tzinfo=UTC)
CARD = ("<b>New task T-3: Cambio de envío — Carmen Díaz</b>\nCustomer: Carmen Díaz\n"
        "Priority: normal\nTeam: logistics\nStatus: assigned\nFirst response due: 10:20 &amp; "
        "resolution due: 12:00\nLast message: «Quiero cambiar la dirección de entrega»")


@pytest.fixture
def fakes():
    with FakeGraph() as graph, FakeSlack() as slack, FakeTelegram() as telegram:
        yield graph, slack, telegram


@pytest.fixture
def config():
    return load_rules(load_scenario(DEFAULT_SCENARIO).rules)


def lines_of(db, config, fakes) -> list[str]:
    return [entry.render() for entry in build_timeline(db, config, *fakes)]


def index_of(lines: list[str], phrase: str) -> int:
    found = [i for i, line in enumerate(lines) if phrase in line]
    assert found, f"{phrase!r} not in:\n" + "\n".join(lines)
    return found[0]


def add_task(session, now: datetime = T0):
    contact = Contact(wa_id="34611000003", name="Carmen Díaz")
    session.add(contact)
    session.flush()
    task = create_task(session, title="Cambio de envío", category="operations",
                       priority="normal", actor=SYSTEM, contact_id=contact.id, now=now,
                       details={"matched": [{"rule": "shipping-change",
                                             "reasons": ["keyword 'entrega' found"]}]})
    return contact, task


def test_events_of_one_instant_keep_the_order_they_were_written(db, config, fakes):
    with db.transaction() as session:
        _, task = add_task(session)
        record_event(session, task=task, actor="system", action="assign", from_status="new",
                     to_status="assigned", details={"reason": "assigned to ana: least loaded"},
                     at=T0)
        record_event(session, task=task, actor="system", action="routed",
                     details={"summary": "assigned to ana: least loaded"}, at=T0)
    lines = lines_of(db, config, fakes)
    assert index_of(lines, "created") < index_of(lines, "assigned to ana") < index_of(
        lines, "routed")


def test_a_rating_comes_after_the_question_it_answers(db, config, fakes):
    """WhatsApp stamps messages to the whole second: the rating's stamp precedes the question
    sent in that same second, but it reached opsbot after it."""
    graph = fakes[0]
    httpx.post(f"{graph.url}/v20.0/{PHONE_ID}/messages", json={
        "messaging_product": "whatsapp", "to": "34611000003", "type": "text",
        "text": {"body": "Hola Carmen, ¿qué tal te hemos atendido? Responde del 1 al 5."}})
    asked = graph.calls("messages")[-1].at
    time.sleep(0.01)
    with db.transaction() as session:
        contact, task = add_task(session, now=asked - timedelta(seconds=5))
        session.add(InboundEvent(provider="whatsapp", provider_event_id="wamid.RATING",
                                 raw_body=b"{}", received_at=datetime.now(UTC),
                                 status="processed"))
        session.add(Message(provider_message_id="wamid.RATING", direction=Direction.INBOUND,
                            contact_id=contact.id, task_id=task.id, text="5",
                            created_at=asked.replace(microsecond=0)))
    lines = lines_of(db, config, fakes)
    assert index_of(lines, "¿qué tal te hemos atendido?") < index_of(lines, "«5»")


@pytest.mark.parametrize(("action", "details", "phrase"), [
    ("assign", {"reason": "assigned to ana: least loaded"}, "assigned to ana: least loaded"),
    ("reply", {"text": "Hecho, la entrega irá a la nueva dirección."},
     "«Hecho, la entrega irá a la nueva dirección.»"),
    ("close", {"reason": "Dirección actualizada"}, "Dirección actualizada"),
    ("reminder", {"kind": "first_response", "percent": 80}, "80 % of the first response time"),
    ("escalated", {"step": "notify_supervisor"}, "notify supervisor"),
    ("rated", {"rating": 5, "message_id": 7}, "5 of 5"),
])
def test_audit_details_read_as_phrases(db, config, fakes, action, details, phrase):
    with db.transaction() as session:
        _, task = add_task(session)
        record_event(session, task=task, actor="agent:marta", action=action, details=details,
                     at=T0 + timedelta(seconds=1))
    text = "\n".join(lines_of(db, config, fakes))
    assert phrase in text
    assert "{'" not in text and "':" not in text, text
    assert "Marta López" in text  # agents by name, not by id


def test_telegram_cards_are_shown_in_full(db, config, fakes):
    telegram = fakes[2]
    keyboard = {"inline_keyboard": [[{"text": "Accept", "callback_data": "accept:3"},
                                     {"text": "Decline", "callback_data": "decline:3"}]]}
    response = httpx.post(f"{telegram.url}/bot123456:SANDBOX/sendMessage", data={
        "chat_id": "100000006", "text": CARD, "parse_mode": "HTML",
        "reply_markup": json.dumps(keyboard)})
    assert response.status_code == 200, response.text
    text = "\n".join(lines_of(db, config, fakes))
    assert "Telegram → Marta López" in text
    for line in ("New task T-3: Cambio de envío — Carmen Díaz", "Status: assigned",
                 "First response due: 10:20 & resolution due: 12:00",
                 "Last message: «Quiero cambiar la dirección de entrega»"):
        assert line in text, text
    assert "…" not in text and "<b>" not in text
    assert "[Accept] [Decline]" in text


class Collected:
    """An echo that remembers when each line came."""

    def __init__(self):
        self.lines: list[str] = []
        self.changed = threading.Condition()

    def __call__(self, line: str) -> None:
        with self.changed:
            self.lines.append(line)
            self.changed.notify_all()

    def wait_for(self, phrase: str, timeout: float = 5) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: any(phrase in x for x in self.lines), timeout), \
                self.lines


def test_streaming_prints_each_entry_while_the_run_goes_on():
    echo = Collected()
    timeline = Timeline([])
    with streaming(timeline, echo, every=0.01, settle=timedelta(0)):
        timeline.add(Entry(datetime.now(UTC), "scenario", "first step"))
        echo.wait_for("first step")
        assert len(echo.lines) == 1
        timeline.add(Entry(datetime.now(UTC), "scenario", "second step"))
        echo.wait_for("second step")
    assert [line.split("scenario")[-1].strip() for line in echo.lines] == [
        "first step", "second step"]


def test_streaming_holds_recent_entries_back_to_print_them_in_order():
    """A source may show an entry late (a transaction commits after its instant): entries
    younger than `settle` wait, so that an older one found later still goes first."""
    now = [T0]
    found: list[Entry] = []

    def source() -> list[Entry]:
        taken, found[:] = list(found), []
        return taken

    echo = Collected()
    timeline = Timeline([source])
    with streaming(timeline, echo, every=0.01, settle=timedelta(seconds=1),
                   clock=lambda: now[0]):
        found.append(Entry(T0 - timedelta(seconds=2), "opsbot T-1", "old enough"))
        found.append(Entry(T0 - timedelta(milliseconds=200), "opsbot T-1", "second"))
        echo.wait_for("old enough")
        time.sleep(0.05)
        assert len(echo.lines) == 1
        found.append(Entry(T0 - timedelta(milliseconds=500), "opsbot T-1", "first"))
        now[0] = T0 + timedelta(seconds=1)
        echo.wait_for("second")
    assert [line.rsplit(" ", 1)[-1] for line in echo.lines] == ["enough", "first", "second"]

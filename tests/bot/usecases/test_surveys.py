"""The satisfaction survey against the fake Graph API: what WhatsApp receives (within its
limits), the template outside the window, skips and failures, and the customer's answers
(a button, a text rating, a comment), none of which reopens a task."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bot.core import tunables
from bot.usecases import surveys
from bot.usecases.conversation import MessageOutcome, apply_message
from bot.usecases.delivery import DeliveryOutcome, Outlets, deliver_outbox
from bot.whatsapp.parsing import InboundMessage
from bot.whatsapp.sending import WhatsAppSender
from notifiers.commands import run_command
from notifiers.grammar import CommandRequest
from rules.loader import parse_rules
from sandbox.graph import LIMITS, interactive_problem
from store.contacts import upsert_contact
from store.events import Audit, list_events
from store.models import Message, OutboxMessage, Survey, Task, TaskStatus
from store.surveys import REOPENED, survey_payload
from store.types import utcnow
from tests.fakes import FakeGraph
from tests.notifiers.helpers import RULES, make_task, simple_assign

CUSTOMER = "34600000001"  # make_task's
FACES = RULES + """\
survey:
  delay: 0s
  thanks: {es: "¡Gracias!", en: "Thanks!"}
  comment_within: 10m
"""
SCALE = RULES + "survey: {delay: 0s, style: scale}\n"
TEMPLATE = FACES + "  template: {name: opsbot_survey, languages: [es, en]}\n"


@pytest.fixture
def graph():
    with FakeGraph() as fake:
        yield fake


def closed(db, config, *, wrote_ago=timedelta(minutes=5), language="es") -> int:
    """A task accepted and closed by Ana through the command layer, its customer having
    written `wrote_ago`."""
    with db.transaction() as session:
        task = make_task(session, assignee="ana", language=language)
        task.contact.last_inbound_at = utcnow() - wrote_ago
        task_id = task.id
    for verb in ("accept", "close"):
        request = CommandRequest("slack", "U0ANA", f"{verb} {task_id}")
        assert run_command(db, config, request, now=utcnow(), assign=simple_assign).ok
    return task_id


def deliver(db, graph, config) -> list:
    """Delivers the survey rows; returns each outcome."""
    outlets = Outlets(agents={}, config=config,
                      whatsapp=WhatsAppSender(phone_id="1000000001", token="t",
                                              api_base_url=graph.url))
    with db.transaction() as session:
        rows = session.scalars(select(OutboxMessage.id).where(OutboxMessage.kind == "survey"))
        ids = list(rows)
    return [deliver_outbox(db, outlets, row_id).outcome for row_id in ids]


def survey(db) -> Survey:
    with db.transaction() as session:
        return session.scalars(select(Survey)).one()


def write(db, config, *, text, payload=None, wamid, kind="text", wa_id=CUSTOMER,
          at=None) -> str:
    message = InboundMessage(wamid=wamid, wa_id=wa_id, user_id=None, name="Carmen Ruiz",
                             type=kind, at=at or utcnow(), text=text, button_payload=payload)
    with db.transaction() as session:
        return apply_message(session, config=config, message=message, now=utcnow())


def press(db, config, task_id, score, *, wamid="wamid.BUTTON", kind="interactive",
          **kwargs) -> str:
    """The customer presses a reply button (`button`: a template's quick reply)."""
    return write(db, config, text="😀 Bien", payload=survey_payload(task_id, score),
                 wamid=wamid, kind=kind, **kwargs)


def events(db, task_id) -> list:
    with db.transaction() as session:
        return list_events(session, task_id=task_id)


def task_of(db, task_id) -> Task:
    with db.transaction() as session:
        return session.get(Task, task_id)


def task_count(db) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count(Task.id)))


def test_inside_the_window_the_faces_go_as_reply_buttons_within_whatsapps_limits(db, graph):
    config = parse_rules(FACES)
    task_id = closed(db, config)
    assert deliver(db, graph, config) == [DeliveryOutcome.SENT]
    [sent] = [m for m in graph.sent_messages() if m["type"] == "interactive"]
    interactive = sent["interactive"]
    assert (sent["to"], interactive["type"]) == (CUSTOMER, "button")
    assert interactive["body"]["text"] == "¿Qué tal te atendimos?"
    buttons = [button["reply"] for button in interactive["action"]["buttons"]]
    assert [b["title"] for b in buttons] == ["😀 Bien", "😐 Regular", "😞 Mal"]
    assert len(buttons) <= LIMITS["buttons"]
    assert all(len(b["title"]) <= 20 and len(b["id"]) <= 256 for b in buttons)
    assert buttons[0]["id"] == survey_payload(task_id, 5)
    assert interactive_problem(sent) is None
    row = survey(db)
    assert (row.status, row.via) == ("sent", "interactive")
    assert row.sent_at is not None and row.provider_message_id.startswith("wamid.")
    assert deliver(db, graph, config) == [DeliveryOutcome.SKIPPED]  # sent: not again


def test_a_survey_whatsapp_accepted_is_recorded_through_a_database_hiccup(db, graph,
                                                                          monkeypatch):
    config = parse_rules(FACES)
    closed(db, config)
    monkeypatch.setattr(tunables, "BACKOFF", (0.01,))
    record, calls = surveys._record_sent, []

    def hiccup(*args):
        calls.append(args)
        if len(calls) == 1:
            raise OperationalError("UPDATE surveys", {}, Exception("database is locked"))
        return record(*args)

    monkeypatch.setattr(surveys, "_record_sent", hiccup)
    assert deliver(db, graph, config) == [DeliveryOutcome.SENT]
    assert len(calls) == 2 and survey(db).status == "sent"
    assert len([m for m in graph.sent_messages() if m["type"] == "interactive"]) == 1


def test_the_scale_goes_as_a_list_of_five_rows_in_the_customers_language(db, graph):
    config = parse_rules(SCALE)
    closed(db, config, language="en")
    assert deliver(db, graph, config) == [DeliveryOutcome.SENT]
    [sent] = [m for m in graph.sent_messages() if m["type"] == "interactive"]
    action = sent["interactive"]["action"]
    rows = [row for section in action["sections"] for row in section["rows"]]
    assert (sent["interactive"]["type"], action["button"]) == ("list", "Rate")
    assert sent["interactive"]["body"]["text"] == "How did we do?"
    assert [row["title"] for row in rows][0] == "⭐⭐⭐⭐⭐ Excellent"
    assert len(rows) == 5 and all(len(row["title"]) <= 24 for row in rows)
    assert interactive_problem(sent) is None


def test_outside_the_window_the_survey_template_carries_the_payloads(db, graph):
    config = parse_rules(TEMPLATE)
    task_id = closed(db, config, wrote_ago=timedelta(hours=30))
    assert deliver(db, graph, config) == [DeliveryOutcome.SENT]
    [sent] = [m for m in graph.sent_messages() if m["type"] == "template"]
    template = sent["template"]
    assert (template["name"], template["language"]["code"]) == ("opsbot_survey", "es")
    payloads = [c["parameters"][0]["payload"] for c in template["components"]
                if c.get("sub_type") == "QUICK_REPLY"]
    assert payloads == [survey_payload(task_id, score) for score in (5, 3, 1)]
    assert (survey(db).status, survey(db).via) == ("sent", "template")


def test_outside_the_window_without_a_template_nothing_is_sent_and_the_row_is_done(db, graph):
    config = parse_rules(FACES)
    closed(db, config, wrote_ago=timedelta(hours=30))
    assert deliver(db, graph, config) == [DeliveryOutcome.SENT]  # done: not retried
    assert [m for m in graph.sent_messages() if m["type"] != "text"] == []
    row = survey(db)
    assert (row.status, row.sent_at) == ("skipped", None)
    assert "survey.template" in row.note
    with db.transaction() as session:
        outbox = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "survey"))
        assert [r.status for r in outbox] == ["sent"]


def test_a_refused_survey_is_failed_with_a_note_and_no_card_for_the_agent(db, graph):
    config = parse_rules(FACES)
    closed(db, config)
    graph.fail_next(status=400)
    assert deliver(db, graph, config) == [DeliveryOutcome.FAILED]
    row = survey(db)
    assert row.status == "failed" and "Graph API error" in row.note
    with db.transaction() as session:
        assert session.scalars(select(OutboxMessage.kind)
                               .where(OutboxMessage.kind == "customer_refused")).all() == []


@pytest.mark.parametrize("kind", ["interactive", "button"])
def test_a_button_answer_rates_the_closed_task_with_its_agent_and_team(db, graph, kind):
    config = parse_rules(FACES)
    task_id = closed(db, config)
    deliver(db, graph, config)
    assert press(db, config, task_id, 5, kind=kind) == MessageOutcome.RATED
    task = task_of(db, task_id)
    assert (task.status, task.rating, task_count(db)) == (TaskStatus.CLOSED, 5, 1)
    row = survey(db)
    assert (row.status, row.score, row.good, row.answered_by) == ("answered", 5, True, "button")
    rated = [e for e in events(db, task_id) if e.action == Audit.RATED]
    assert [(e.details["rating"], e.details["agent"], e.details["team"], e.details["survey_id"])
            for e in rated] == [(5, "ana", "logistics", row.id)]
    with db.transaction() as session:
        pressed = session.scalars(select(Message).where(Message.provider_message_id ==
                                                         "wamid.BUTTON")).one()
        thanks = session.scalars(select(OutboxMessage)
                                 .where(OutboxMessage.kind == "survey_thanks")).one()
    assert pressed.task_id == task_id and thanks.payload["text"] == "¡Gracias!"


def test_a_button_answer_reaches_the_rated_task_while_a_newer_one_is_open(db, graph):
    config = parse_rules(FACES)
    task_id = closed(db, config)
    with db.transaction() as session:
        newer = make_task(session, assignee="ana").id
    assert press(db, config, task_id, 1) == MessageOutcome.RATED
    assert (task_of(db, task_id).rating, task_of(db, newer).rating) == (1, None)
    assert (survey(db).good, task_of(db, newer).status) == (False, TaskStatus.ASSIGNED)
    assert [e.action for e in events(db, newer)][-1] != Audit.MESSAGE  # not threaded there


def test_the_first_answer_counts_a_second_press_is_only_kept(db, graph):
    config = parse_rules(FACES)
    task_id = closed(db, config)
    press(db, config, task_id, 5)
    assert press(db, config, task_id, 1, wamid="wamid.AGAIN") == MessageOutcome.RATED
    assert (task_of(db, task_id).rating, survey(db).score, task_count(db)) == (5, 5, 1)
    last = events(db, task_id)[-1]
    assert (last.action, last.details["already_answered"]) == (Audit.MESSAGE, True)


@pytest.mark.parametrize("forge", ["csat:{task}:5:" + "0" * 24, "csat:{task}:4:{mac}"])
def test_a_forged_payload_is_an_ordinary_message(db, graph, forge):
    config = parse_rules(FACES)
    task_id = closed(db, config)
    mac = survey_payload(task_id, 5).rsplit(":", 1)[1]
    outcome = write(db, config, text="😀 Bien", payload=forge.format(task=task_id, mac=mac),
                    wamid="wamid.FORGED", kind="interactive")
    assert outcome != MessageOutcome.RATED
    assert (task_of(db, task_id).rating, survey(db).answered_at) == (None, None)


def test_another_customers_payload_rates_nothing(db, graph):
    config = parse_rules(FACES)
    task_id = closed(db, config)
    with db.transaction() as session:
        upsert_contact(session, wa_id="34699999999", user_id=None, name="Otro", now=utcnow())
    outcome = press(db, config, task_id, 5, wa_id="34699999999")
    assert outcome != MessageOutcome.RATED
    assert (task_of(db, task_id).rating, survey(db).answered_at) == (None, None)


def test_a_text_rating_after_the_closing_answers_the_survey_too(db, graph):
    config = parse_rules(FACES)
    task_id = closed(db, config)
    assert write(db, config, text="4", wamid="wamid.TEXT") == MessageOutcome.RATED
    row = survey(db)
    assert (row.score, row.good, row.answered_by, task_of(db, task_id).rating) == (
        4, True, "text", 4)
    assert deliver(db, graph, config) == [DeliveryOutcome.SENT]  # answered: not sent
    assert [m for m in graph.sent_messages() if m["type"] == "interactive"] == []
    assert (survey(db).status, survey(db).sent_at) == ("answered", None)


def test_a_text_soon_after_the_answer_is_its_comment_and_reopens_nothing(db, graph):
    config = parse_rules(FACES)
    task_id = closed(db, config)
    answered = utcnow()
    press(db, config, task_id, 3, at=answered)
    outcome = write(db, config, text="El repartidor llegó tarde, pero bien.",
                    wamid="wamid.COMMENT", at=answered + timedelta(minutes=2))
    assert outcome == MessageOutcome.COMMENTED
    row = survey(db)
    assert row.comment == "El repartidor llegó tarde, pero bien." and row.comment_at
    assert (task_of(db, task_id).status, task_count(db)) == (TaskStatus.CLOSED, 1)
    last = events(db, task_id)[-1]
    assert (last.action, last.details["survey_comment"]) == (Audit.MESSAGE, True)
    # Past the window a message is a message again (here: it reopens the task).
    later = write(db, config, text="Mi pedido 4411 no ha llegado", wamid="wamid.LATER",
                  at=answered + timedelta(minutes=11))
    assert later == MessageOutcome.REOPENED


def test_without_comment_within_a_text_after_the_answer_is_no_comment(db, graph):
    config = parse_rules(RULES + "survey: {}\n")
    task_id = closed(db, config)
    press(db, config, task_id, 5)
    assert write(db, config, text="Todo bien", wamid="wamid.AFTER") != MessageOutcome.COMMENTED
    assert survey(db).comment is None


def test_a_task_reopened_before_its_survey_gets_one_survey_at_its_next_closing(db, graph):
    config = parse_rules(FACES)
    task_id = closed(db, config)
    assert write(db, config, text="Mi pedido 4411 no ha llegado todavía",
                 wamid="wamid.AGAIN") == MessageOutcome.REOPENED
    assert deliver(db, graph, config) == [DeliveryOutcome.SENT]  # done, nothing sent
    assert (survey(db).status, survey(db).note) == ("skipped", REOPENED)
    for verb in ("accept", "close"):  # the reopened task went back to Ana
        request = CommandRequest("slack", "U0ANA", f"{verb} {task_id}")
        assert run_command(db, config, request, now=utcnow(), assign=simple_assign).ok
    assert deliver(db, graph, config) == [DeliveryOutcome.SENT]
    assert [m["type"] for m in graph.sent_messages()].count("interactive") == 1
    with db.transaction() as session:
        assert session.scalar(select(func.count(Survey.id))) == 1
        assert session.scalar(select(func.count(OutboxMessage.id))
                              .where(OutboxMessage.kind == "survey")) == 1
    assert survey(db).status == "sent"


def test_no_survey_goes_to_a_customer_erased_before_it_was_due(db, graph):
    config = parse_rules(FACES)
    task_id = closed(db, config)
    with db.transaction() as session:
        session.get(Task, task_id).contact.erased_at = utcnow()
    assert deliver(db, graph, config) == [DeliveryOutcome.SENT]
    assert (survey(db).status, survey(db).note) == ("skipped", "the customer's data was erased")
    assert [m for m in graph.sent_messages() if m["type"] == "interactive"] == []

"""What each WhatsApp item becomes, over real HTTP and a real worker (issue 14, items 3, 5,
6, 8 and 11): malformed items are kept failed without taking their body down; edits,
deletions, number and identity changes, call permission answers and errors open no task;
a Flow's answers are kept, shown and matched by rules; replies go out from the number the
customer wrote to; absurd timestamps are replaced by the receive time."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from rq import SimpleWorker
from sqlalchemy import func, select

from bot.core.bootstrap import build_services
from bot.worker.drains import drain
from bot.worker.entrypoints import install_services
from store.events import Audit
from store.keys import blind_index
from store.models import (
    Contact,
    EventStatus,
    InboundEvent,
    Message,
    OutboxMessage,
    Task,
    TaskEvent,
)
from store.reports import build_report
from tests.bot.whatsapp_kit import (
    CUSTOMER,
    TEXT,
    make_settings,
    message_body,
    post,
    recorded,
    running_app,
)
from tests.fakes import FakeGraph

FLOW_RULE = """
  - name: unhappy-survey
    when: {flow: {name: csat, fields: {rating: [1, 2]}}}
    then: {category: support, team: support, priority: high, tags: [detractor]}
"""


@pytest.fixture
def graph():
    with FakeGraph(token="TEST-TOKEN") as fake:
        yield fake


@pytest.fixture
def services(tmp_path, database_url, redis_url, graph):
    settings = make_settings(tmp_path, database_url, redis_url, whatsapp_api_base_url=graph.url,
                             whatsapp_phone_id="1000000001,1000000002")
    rules = settings.rules_path.read_text(encoding="utf-8")
    rules = rules.replace("rules:\n", "rules:" + FLOW_RULE, 1)
    rules = rules.replace("capacity: 50}", "capacity: 50, admin: true}", 1)  # ana is an admin
    settings.rules_path.write_text(rules, encoding="utf-8")
    built = build_services(settings, migrate=False)
    install_services(built)
    yield built
    install_services(None)
    built.close()


@pytest.fixture
def url(services):
    with running_app(services) as address:
        yield address


def deliver(services, url, *bodies: dict | bytes) -> None:
    """Posts each body (answered 200), then processes everything: a drain here, then every
    queued job. The app asks for its drain in a thread after answering: a burst worker
    started at that moment could find the queue still empty and quit."""
    for body in bodies:
        response = post(url, body)
        assert response.status_code == 200, response.text
    drain(services)
    SimpleWorker([services.jobs.queue], connection=services.redis).work(
        burst=True, with_scheduler=False)


def rows(services, model, *where) -> list:
    with services.db.transaction() as session:
        found = list(session.scalars(select(model).where(*where).order_by(model.id)))
        session.expunge_all()
        return found


def count(services, model, *where) -> int:
    with services.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def audit(services, action: str) -> list[TaskEvent]:
    return rows(services, TaskEvent, TaskEvent.action == action)


# item 5: events that are not requests -------------------------------------------------------

@pytest.mark.parametrize("name", ["edit", "revoke", "system_identity", "number_change",
                                  "call_permission_reply", "interactive_error"])
def test_an_item_that_is_not_a_request_opens_no_task_and_answers_nothing(services, url, graph,
                                                                        name):
    deliver(services, url, recorded(name))
    [event] = rows(services, InboundEvent)
    assert event.status == EventStatus.PROCESSED, event.error
    assert count(services, Task) == 0
    assert count(services, OutboxMessage) == 0
    assert graph.sent_messages() == []
    [kept] = rows(services, Message)
    assert kept.task_id is None and kept.payload["kind"] != "request"


def test_an_edit_changes_the_stored_message_and_shows_the_assignee_the_new_text(services, url):
    deliver(services, url, message_body({"type": "text", "text": {"body": "Pedido 4511"}},
                                        wamid="wamid.ORIGINAL"))
    [task] = rows(services, Task)
    deliver(services, url, recorded("edit"))
    [original] = rows(services, Message, Message.provider_message_id == "wamid.ORIGINAL")
    assert original.text == "Perdón, el pedido es el 4512, no el 4511"
    assert original.payload["edits"][0]["text"] == "Pedido 4511"
    [edited] = audit(services, Audit.MESSAGE_EDITED)
    assert edited.task_id == task.id and edited.details["previous"] == "Pedido 4511"
    [card] = rows(services, OutboxMessage, OutboxMessage.kind == "follow_up")
    assert "4512" in card.payload["notification"]["text"]
    assert count(services, Task) == 1  # and no acknowledgement for the edit
    assert count(services, OutboxMessage, OutboxMessage.kind == "ack") == 1


def test_a_revoke_marks_the_message_deleted_on_its_task(services, url):
    deliver(services, url, message_body(TEXT, wamid="wamid.ORIGINAL"))
    deliver(services, url, recorded("revoke"))
    [original] = rows(services, Message, Message.provider_message_id == "wamid.ORIGINAL")
    assert original.payload["deleted_at"]
    [deleted] = audit(services, Audit.MESSAGE_DELETED)
    assert deleted.details["message_id"] == original.id
    assert count(services, Task) == 1


def test_a_number_change_moves_the_contact_and_nothing_goes_to_the_old_number(services, url,
                                                                           graph):
    deliver(services, url, message_body(TEXT, wamid="wamid.FIRST"))
    graph.reset()
    deliver(services, url, recorded("number_change"))
    [contact] = rows(services, Contact)
    assert contact.wa_id == "34699888777" and contact.phone == "34699888777"
    [changed] = audit(services, Audit.CONTACT_CHANGED)
    assert changed.details == {"old_wa_id": CUSTOMER, "new_wa_id": "34699888777",
                               "text": "Lucía Pérez changed from 34600111222 to 34699888777"}
    assert graph.sent_messages() == []
    deliver(services, url, message_body({"type": "text", "text": {"body": "Sigo esperando"}},
                                        wamid="wamid.NEWNUMBER", wa_id="34699888777"))
    assert count(services, Contact) == 1  # the new number is the same customer
    assert count(services, Task) == 1  # threaded into the open task


def test_an_identity_change_is_on_the_open_task_and_its_cards(services, url):
    deliver(services, url, message_body(TEXT, wamid="wamid.FIRST"))
    deliver(services, url, recorded("system_identity"))
    [task] = rows(services, Task)
    [noted] = [e for e in audit(services, Audit.MESSAGE) if e.details.get("kind")]
    assert noted.task_id == task.id and noted.details["kind"] == "identity change"
    assert "security code" in noted.details["text"]
    [contact] = rows(services, Contact)
    assert contact.identity_changed_at is not None
    deliver(services, url, message_body({"type": "text", "text": {"body": "¿Y mi pedido?"}},
                                        wamid="wamid.AFTER"))
    [card] = rows(services, OutboxMessage, OutboxMessage.kind == "follow_up")
    fields = dict(card.payload["notification"]["fields"])
    assert fields["WhatsApp identity"].startswith("changed ")


# item 6: WhatsApp Flows ---------------------------------------------------------------------

def test_a_completed_flow_keeps_its_answers_and_rules_match_them(services, url):
    deliver(services, url, recorded("nfm_reply"))
    [task] = rows(services, Task)
    assert task.rule == "unhappy-survey" and task.priority == "high"
    assert "detractor" in task.tags
    [message] = rows(services, Message, Message.direction == "inbound")
    assert message.type == "flow"
    assert message.payload["flow"] == {
        "name": "csat", "token": "csat:T-1",
        "fields": {"rating": "2", "comment": "Tardaron tres días en contestar"}}
    assert message.text == "[form] rating: 2; comment: Tardaron tres días en contestar"
    [card] = rows(services, OutboxMessage, OutboxMessage.agent_id == "ana")
    assert "Tardaron tres días" in json.dumps(card.payload["notification"], ensure_ascii=False)


# item 8: several business numbers -----------------------------------------------------------

def test_each_customer_is_answered_from_the_number_they_wrote_to(services, url, graph):
    deliver(services, url, recorded("multi_number"))
    assert count(services, Task) == 2
    paths = sorted(call.path for call in graph.calls("messages")
                   if call.json and call.json.get("type") == "text")
    assert [path.split("/")[-2] for path in paths] == ["1000000001", "1000000002"]
    [refused] = rows(services, InboundEvent, InboundEvent.status == EventStatus.FAILED)
    assert refused.error == ("sent to WhatsApp number '1000000099', which is not configured "
                             "(WHATSAPP_PHONE_ID)")
    assert refused.kind == "message"


# item 7: Meta's webhook-level errors --------------------------------------------------------

def test_a_webhook_level_error_is_logged_kept_counted_and_told_once_an_hour(services, url,
                                                                          caplog):
    first = recorded("webhook_errors")
    again = recorded("webhook_errors")
    again["entry"][0]["changes"][0]["value"]["errors"][0]["message"] = "(#130429) again"
    with caplog.at_level("ERROR", logger="bot.usecases.platform"):
        deliver(services, url, first, again)
    events = rows(services, InboundEvent)
    assert [(e.kind, e.status) for e in events] == [("error", EventStatus.PROCESSED)] * 2
    assert events[0].error == ("WhatsApp reported: 130429 Rate limit hit: Cloud API message "
                               "throughput has been reached.")
    assert [r.getMessage() for r in caplog.records].count(
        "WhatsApp reported an error: 130429 Rate limit hit: Cloud API message throughput has "
        "been reached.") == 2
    recorded_errors = audit(services, Audit.WHATSAPP_ERROR)
    assert [e.details["code"] for e in recorded_errors] == ["130429", "130429"]
    [card] = rows(services, OutboxMessage, OutboxMessage.kind == "whatsapp_error")
    assert card.agent_id == "ana"
    assert card.payload["notification"]["title"] == "WhatsApp reported error 130429: Rate limit hit"
    assert count(services, Task) == 0
    now = datetime.now(UTC)
    with services.db.transaction() as session:
        report = build_report(session, since=now - timedelta(hours=1), until=now,
                              minutes_per_task=5)
    assert report.alerts.whatsapp_errors == {"130429": 2}


# item 3: malformed items --------------------------------------------------------------------

def _item(wamid: str, wa_id: str = CUSTOMER, timestamp: object = None) -> dict:
    return {"from": wa_id, "id": wamid, "timestamp": timestamp or str(int(time.time())),
            "type": "text", "text": {"body": f"hola desde {wa_id[:12]}"}}


def _body(*messages: dict) -> dict:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1000000001"},
             "contacts": [{"profile": {"name": "Varios"}, "wa_id": m["from"]} for m in messages],
             "messages": list(messages)}
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}]}


def test_malformed_items_are_kept_failed_and_the_rest_of_their_body_is_processed(services, url):
    long_a, long_b = "wamid." + "A" * 300 + "one", "wamid." + "A" * 300 + "two"
    body = _body(_item("wamid.GOOD", wa_id="34600000001"),
                 _item("wamid.NUL\u0000INSIDE", wa_id="34600000002"),
                 _item("wamid.LONGWAID", wa_id="3" * 200),
                 _item(long_a, wa_id="34600000003"), _item(long_b, wa_id="34600000004"),
                 _item("wamid.HUGETIME", wa_id="34600000005", timestamp=1e20))
    deliver(services, url, body)
    failed = {e.error for e in rows(services, InboundEvent,
                                    InboundEvent.status == EventStatus.FAILED)}
    assert failed == {"message id contains control characters",
                      "sender wa_id is 200 characters long (at most 32)",
                      f"message id is {len(long_a)} characters long (at most 256)"}
    assert count(services, InboundEvent, InboundEvent.status == EventStatus.FAILED) == 4
    assert count(services, Task) == 2  # wamid.GOOD and wamid.HUGETIME
    deliver(services, url, body)  # Meta's redelivery: every item is recognised
    assert count(services, InboundEvent) == 6


def test_a_body_nested_thousands_deep_is_kept_failed_and_answered_200(services, url):
    raw = b'{"entry": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    deliver(services, url, raw)
    [event] = rows(services, InboundEvent)
    assert event.status == EventStatus.FAILED and "RecursionError" in event.error
    assert event.raw_body == raw


# item 11: absurd timestamps -----------------------------------------------------------------

@pytest.mark.parametrize("timestamp", ["32503680000", "-86400", "1e20", "soon"],
                         ids=["year 3000", "1969", "overflow", "not a number"])
def test_an_absurd_timestamp_is_replaced_by_the_receive_time(services, url, timestamp):
    before = datetime.now(UTC)
    deliver(services, url, _body(_item("wamid.ABSURD", wa_id="34600000009",
                                       timestamp=timestamp)))
    [message] = rows(services, Message, Message.provider_message_id == "wamid.ABSURD")
    [event] = rows(services, InboundEvent, InboundEvent.provider_event_id == "wamid.ABSURD")
    assert message.payload["timestamp_replaced"] == timestamp
    assert message.created_at == event.received_at
    assert before - timedelta(seconds=1) <= message.created_at <= datetime.now(UTC)
    [contact] = rows(services, Contact, Contact.wa_id_index == blind_index("34600000009"))
    assert contact.last_inbound_at == event.received_at  # the 24-hour window is today's
    [task] = rows(services, Task, Task.contact_id == contact.id)
    assert task.first_response_due > before  # timers that will fire, not negative scores

"""Splitting webhook bodies into stored items and reading them back, without a database:
odd shapes become failed items with their reason, timestamps are sane, and the raw reader
classifies what pywa cannot read."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.whatsapp.parsing import Inbound, read_message
from bot.whatsapp.payloads import MAX_AGE, PayloadError, instant_of, split_body

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
METADATA = {"display_phone_number": "15550001111", "phone_number_id": "1000000001"}


def envelope(*changes: dict, entries: list | None = None) -> bytes:
    entry = {"id": "WABA", "changes": [{"field": "messages", "value": v} for v in changes]}
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": entries if entries is not None else [entry]}).encode()


def message(wamid: str, **extra) -> dict:
    return {"from": "34600111222", "id": wamid, "timestamp": str(int(NOW.timestamp())),
            "type": "text", "text": {"body": "hola"}, **extra}


def value(*messages: dict, **extra) -> dict:
    return {"messaging_product": "whatsapp", "metadata": METADATA,
            "contacts": [{"profile": {"name": "Lucía"}, "wa_id": "34600111222"}],
            "messages": list(messages), **extra}


@pytest.mark.parametrize(("given", "replaced"), [
    (str(int(NOW.timestamp())), False),
    (str(int((NOW - timedelta(days=6)).timestamp())), False),  # Meta redelivers for 7 days
    (str(int((NOW - MAX_AGE - timedelta(seconds=1)).timestamp())), True),
    ("32503680000", True),  # year 3000
    ("-86400", True),  # 1969
    (1e20, True),  # beyond what a date can hold
    ("soon", True),
    (None, True),
])
def test_a_timestamp_is_believed_only_near_its_receipt(given, replaced):
    at, was_replaced = instant_of(given, NOW)
    assert was_replaced is replaced
    assert at == NOW if replaced else at == datetime.fromtimestamp(int(given), UTC)


def test_a_body_too_deep_to_parse_is_refused_with_its_reason():
    with pytest.raises(PayloadError, match="RecursionError"):
        split_body(b"[" * 5000 + b"]" * 5000, received_at=NOW)


def test_an_odd_entry_fails_alone():
    good = {"id": "WABA", "changes": [{"field": "messages", "value": value(message("wamid.OK"))}]}
    items = split_body(envelope(entries=["not an entry", good, {"changes": "nope"}]),
                       received_at=NOW)
    assert [(i.kind, i.provider_event_id, i.error) for i in items][1] == (
        "message", "wamid.OK", None)
    assert [i.error for i in items if i.error] == ["entry has no `changes` list"] * 2
    assert len({i.provider_event_id for i in items}) == 3


def test_messages_that_are_not_a_list_fail_with_their_reason():
    [item] = split_body(envelope(value(), value(messages={"id": "x"})), received_at=NOW)[1:]
    assert item.error == "`messages` and `statuses` must be lists"


def test_a_status_with_a_bad_id_is_kept_as_a_failed_status():
    status = {"id": "wamid.\u0000", "status": "read", "timestamp": "1", "recipient_id": "3"}
    body = envelope({"messaging_product": "whatsapp", "metadata": METADATA,
                     "statuses": [status]})
    [item] = split_body(body, received_at=NOW)
    assert (item.kind, item.error) == ("status", "status message id contains control characters")


def test_each_receipt_of_a_webhook_level_error_counts_once():
    body = envelope({"messaging_product": "whatsapp", "metadata": METADATA,
                     "errors": [{"code": 130429, "title": "Rate limit hit"}]})
    [first] = split_body(body, received_at=NOW)
    [redelivered] = split_body(body, received_at=NOW)
    [later] = split_body(body, received_at=NOW + timedelta(seconds=5))
    assert first.kind == "error"
    assert first.provider_event_id == redelivered.provider_event_id != later.provider_event_id


def test_an_item_for_a_number_we_do_not_run_is_refused_by_name():
    [item] = split_body(envelope(value(message("wamid.X"))), received_at=NOW,
                        phone_ids=("2000000002",))
    assert item.kind == "message"
    assert item.error == ("sent to WhatsApp number '1000000001', which is not configured "
                          "(WHATSAPP_PHONE_ID)")


@pytest.mark.parametrize(("content", "kind", "text", "refers_to"), [
    ({"type": "edit", "edit": {"original_message_id": "wamid.O",
                               "message": {"text": {"body": "nuevo"}}}},
     Inbound.EDIT, "nuevo", "wamid.O"),
    ({"type": "revoke", "revoke": {"original_message_id": "wamid.O"}, "contacts_missing": 1},
     Inbound.REVOKE, "[deleted a message]", "wamid.O"),
    ({"type": "system", "system": {"type": "customer_moved_somewhere", "body": "x moved"}},
     Inbound.SYSTEM, "x moved", None),
    ({"type": "interactive", "interactive": {"type": "nfm_reply", "nfm_reply": {
        "name": "flow", "body": "Sent", "response_json": '{"flow_token": "booking:7", "day": 3}'}},
      "context": "not a dict"},
     Inbound.REQUEST, "[form] day: 3", None),
])
def test_the_raw_reader_classifies_what_pywa_cannot_read(content, kind, text, refers_to):
    item = {"from": "34600111222", "id": "wamid.RAW", "timestamp": str(int(NOW.timestamp())),
            **content}
    body = envelope({"messaging_product": "whatsapp", "metadata": METADATA, "messages": [item]})
    read = read_message(body, received_at=NOW)
    assert (read.kind, read.text, read.refers_to, read.parsed_by) == (kind, text, refers_to,
                                                                      "raw")

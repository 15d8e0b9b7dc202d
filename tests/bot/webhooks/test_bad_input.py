"""Malformed requests get a 4xx over real HTTP, never a 500, and leave no error in the log."""

import json
import time

import httpx
import pytest

from sandbox.inbound import slack_command, slack_signature, whatsapp_signature
from tests.bot.fixtures import SLACK_SECRET, TELEGRAM_SECRET
from tests.bot.webhooks.http_kit import errors, server_log
from tests.bot.world import running_world

NON_ASCII = "é".encode() * 32  # header bytes as a client may send them; not Latin-1 text


@pytest.fixture
def world(db, redis_url, tmp_path):
    with running_world(db, redis_url, tmp_path) as built:
        yield built


def send(world, path: str, raw: bytes, headers: dict[str, str | bytes]) -> httpx.Response:
    return httpx.post(world.send.base_url + path, content=raw, headers=headers, timeout=10)


def slack_headers(raw: bytes, timestamp: str, signature: str | bytes | None = None) -> dict:
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature or slack_signature(raw, SLACK_SECRET, timestamp),
    }


def test_a_non_ascii_whatsapp_signature_is_refused(world, caplog):
    raw = b'{"object": "whatsapp_business_account", "entry": []}'
    with server_log(caplog):
        response = send(world, "/webhooks/whatsapp", raw, {
            "Content-Type": "application/json", "X-Hub-Signature-256": b"sha256=" + NON_ASCII})
    assert response.status_code == 403
    assert errors(caplog) == []


def test_a_whatsapp_signature_for_another_body_is_still_refused(world):
    raw = b'{"object": "whatsapp_business_account", "entry": []}'
    signature = whatsapp_signature(b"other", "wa-secret")
    response = send(world, "/webhooks/whatsapp", raw, {"X-Hub-Signature-256": signature})
    assert response.status_code == 403


def _form(world) -> bytes:
    fields = slack_command(user_id="U0ANA", text="tasks", response_url=world.slack.response_url())
    return "&".join(f"{k}={v}" for k, v in fields.items()).encode()


def test_a_non_ascii_slack_signature_is_refused(world, caplog):
    raw = _form(world)
    with server_log(caplog):
        headers = slack_headers(raw, str(int(time.time())), b"v0=" + NON_ASCII)
        response = send(world, "/slack/events", raw, headers)
    assert response.status_code == 401
    assert errors(caplog) == []


@pytest.mark.parametrize("timestamp", ["abc", "1e10", "123.5", "-5", "", "١٢٣"])
def test_a_slack_timestamp_that_is_not_whole_seconds_is_refused(world, caplog, timestamp):
    raw = _form(world)  # signed over the timestamp as given: only its form is wrong
    headers = {**slack_headers(raw, timestamp), "X-Slack-Request-Timestamp": timestamp.encode()}
    with server_log(caplog):
        response = send(world, "/slack/events", raw, headers)
    assert response.status_code == 401
    assert errors(caplog) == []


@pytest.mark.parametrize(("content_type", "raw"), [
    ("application/json", b"{not json"),
    ("application/json", b"[1, 2]"),
    ("application/x-www-form-urlencoded", b"payload=%7Bnot+json"),
    ("application/x-www-form-urlencoded", b"\xff\xfe\x00not utf-8"),
])
def test_an_unsigned_slack_body_is_refused_before_it_is_parsed(world, caplog, content_type, raw):
    headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": str(int(time.time())),
               "X-Slack-Signature": "v0=" + "0" * 64}
    with server_log(caplog):
        response = send(world, "/slack/events", raw, headers)
    assert response.status_code == 401
    assert errors(caplog) == []


@pytest.mark.parametrize("raw", [
    json.dumps([{"update_id": 1}]).encode(),  # a list
    json.dumps("update").encode(),  # a string
    json.dumps({"message": {"text": "/tasks"}}).encode(),  # no update_id
    json.dumps({"update_id": "7"}).encode(),  # update_id not an integer
    json.dumps({"update_id": 8, "message": "not a message"}).encode(),  # not Telegram's shape
    b"\xff\xfe\x00\x00{",  # not UTF-8
    b"{\"update_id\": 9,",  # not JSON
    b"[" * 100_000,  # nested deeper than any parser recursion
])
def test_a_telegram_body_that_is_not_an_update_is_kept_failed_with_200(world, caplog, raw):
    headers = {"Content-Type": "application/json",
               "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
    with server_log(caplog):
        response = send(world, "/telegram/webhook", raw, headers)
    assert response.status_code == 200  # kept as a failed event (test_telegram_unreadable.py)
    assert response.json()["failed"]
    assert errors(caplog) == []
    assert world.telegram.calls("sendMessage") == []

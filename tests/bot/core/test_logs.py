"""Log redaction: configured secrets, token-shaped text and customers' identifiers (phone
numbers, WhatsApp user ids, e-mail addresses) never reach a log line."""

import logging

import pytest

from bot.core.logs import MASK, QUIET, Redactor, configure_logging

SECRET = "s3cr3t-value"
PHONE, WA_ID, BSUID, EMAIL = "+34 612 34 56 78", "34612345678", "US.13491208655302741918", \
    "ana.garcia+pedidos@example.com"


@pytest.mark.parametrize(("line", "expected"), [
    (f"signing with {SECRET}", f"signing with {MASK}"),
    ("POST https://api.telegram.org/bot123456:AAH-x_y/sendMessage",
     f"POST https://api.telegram.org/bot{MASK}/sendMessage"),
    ('"GET /webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=abc&hub.challenge=1"',
     f'"GET /webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={MASK}&hub.challenge=1"'),
    ("GET /x?client_secret=zzz", f"GET /x?client_secret={MASK}"),
    ("nothing to hide here", "nothing to hide here"),
])
def test_redaction(line, expected):
    assert Redactor([SECRET, "ab"])(line) == expected  # "ab": too short to mask words


@pytest.mark.parametrize(("line", "expected"), [
    (f"message from {PHONE}: hola", f"message from {MASK}: hola"),
    ("call +1 (631) 555-1234 now", f"call {MASK} now"),
    ("+34612345678, +44 20-7946-0958", f"{MASK}, {MASK}"),
    (f"contact wa_id={WA_ID} name=x", f"contact wa_id={MASK} name=x"),
    (f"('{WA_ID}',)", f"('{MASK}',)"),
    (f"user_id {BSUID} parent US.ENT.11815799212886844830", f"user_id {MASK} parent {MASK}"),
    (f"<{EMAIL}> wrote", f"<{MASK}> wrote"),
])
def test_customer_identifiers_are_redacted(line, expected):
    assert Redactor([])(line) == expected


@pytest.mark.parametrize("line", [
    "2026-12-01 02:10:33,123 INFO opsbot.worker: outbox 12: delivered",
    "2026-12-01T02:10:33+00:00 to 2026-12-01T02:10:33.123456+01:00",
    'INFO: 127.0.0.1:54321 - "POST /webhooks/whatsapp HTTP/1.1" 200 OK',
    "T-12 and T-12345678 escalated; task 12345 took 1234.5 ms",
    "Uvicorn running on http://0.0.0.0:8080, worker pid 4194304",
    "message wamid.HBgLMzQ2MTIzNDU2NzgVAgASGBQzQUI2QjYyNzQyMzE0RkQ5NjdDNgA= stored",
    "Slack ts 1733011200.123456, card c-1a2b3c, job outbox-17-1733011200",
    "request 12345678-9abc-4def-8123-456789abcdef, digest sha256:0123456789abcdef",
    "retried 3 times, +3 retries, 99.95% at 12:00, version 4.5.1",
])
def test_ordinary_numbers_and_ids_are_kept(line):
    assert Redactor([])(line) == line


@pytest.fixture
def logged(caplog):
    """configure_logging for this test; the process's logging as it was afterwards."""
    factory, root = logging.getLogRecordFactory(), logging.getLogger().level
    quiet = {name: logging.getLogger(name).level for name in QUIET}
    configure_logging([SECRET], logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield lambda: caplog.text
    logging.setLogRecordFactory(factory)
    logging.getLogger().setLevel(root)
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)


def test_messages_arguments_and_tracebacks_are_redacted(logged):
    log = logging.getLogger("opsbot.test")
    log.info("token %s in the arguments", SECRET)
    try:
        raise RuntimeError(f"failed calling /bot99:XYZ/getMe with {SECRET}")
    except RuntimeError:
        log.exception("a failure")
    text = logged()
    assert SECRET not in text and "99:XYZ" not in text
    assert "token *** in the arguments" in text and "RuntimeError" in text


def test_customer_identifiers_are_redacted_in_messages_arguments_and_tracebacks(logged):
    log = logging.getLogger("opsbot.test")
    log.info(f"inbound from {PHONE} <{EMAIL}>")
    log.warning("contact %s (%s) at %s", WA_ID, BSUID, EMAIL)
    try:
        raise ValueError(f"no contact {WA_ID} / {BSUID} / {PHONE} / {EMAIL}")
    except ValueError:
        log.exception("lookup failed for task %s", 12345)
    text = logged()
    assert not [value for value in (PHONE, WA_ID, BSUID, EMAIL, "612") if value in text]
    assert "lookup failed for task 12345" in text and "ValueError: no contact *** /" in text


def test_request_loggers_stay_quiet_at_debug(logged):
    logging.getLogger("httpx").info("HTTP Request: POST https://api.telegram.org/bot1:A/x")
    assert "HTTP Request" not in logged()

"""Log redaction: configured secrets and token-shaped text never reach a log line."""

import logging

import pytest

from bot.core.logs import MASK, QUIET, Redactor, configure_logging

SECRET = "s3cr3t-value"


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


def test_request_loggers_stay_quiet_at_debug(logged):
    logging.getLogger("httpx").info("HTTP Request: POST https://api.telegram.org/bot1:A/x")
    assert "HTTP Request" not in logged()

"""The one logging set-up of opsbot's processes, with redaction of secrets and customer data.

Every record of every logger (ours, uvicorn's, RQ's, httpx's) is built by one record factory
that redacts the configured secrets, anything shaped like a token (a Telegram bot token in
a Bot API path, `token=`/`secret=` query values) and customers' identifiers (phone numbers,
WhatsApp user ids, e-mail addresses) from its message and its traceback, before any handler
formats it. Third-party request loggers stay at WARNING: httpx logs every request URL at INFO,
and the Bot API carries the bot token in the path; SQLAlchemy's statements and rows carry
customers' data.
"""

import logging
import re
import traceback
from collections.abc import Callable, Iterable

MASK = "***"
# Request loggers (URLs with tokens) and SQLAlchemy's (statements, parameters and rows, which
# carry customers' data) stay at WARNING whatever LOG_LEVEL says.
QUIET = ("httpx", "httpcore", "urllib3", "telegram", "slack_sdk", "slack_bolt", "aiohttp",
         "hpack", "websockets", "sqlalchemy")
# A Telegram bot token in a Bot API URL (`/bot123456:ABC…/sendMessage`), and the values of
# query parameters that name a token, secret or signature (`hub.verify_token=…`).
_PATTERNS = (
    re.compile(r"(?<=/bot)\d+:[A-Za-z0-9_-]+"),
    re.compile(r"(?i)(?<=[?&])([\w.]*(?:token|secret|signature|password)[\w.]*=)[^&\s\"']+"),
)
# Customers' identifiers, wherever a message, an argument or a traceback quotes them. A digit
# run or a `+` inside a token (preceded by a letter, a digit or one of `_+/`: a wamid or a
# base64 id) is not a phone number, nor is one joined by `.` or `-` to what follows or comes
# before (dates, decimals, UUIDs, `T-12`).
_CUSTOMER_PATTERNS = (
    re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),  # e-mail addresses
    # WhatsApp business-scoped user ids (pywa's `bsuid`): US.13491208655302741918 and their
    # parents, US.ENT.11815799212886844830.
    re.compile(r"(?<![\w.])[A-Z]{2}(?:\.[A-Z]+)?\.\d{8,}(?!\w)"),
    # Phone numbers as people write them after a `+`: +1 (631) 555-1234, +34 612 34 56 78.
    re.compile(r"(?<![\w+/])\+\(?\d(?:[ ().-]{0,2}\d){6,14}"),
    # Without a `+` only 8 to 15 digits in a row (wa_id 16315551234): groups separated by
    # spaces or dashes would take dates and times too.
    re.compile(r"(?<![\w.+/-])\d{8,15}(?!\w|[.,]\d|-\w)"),
)
_MIN_SECRET = 4  # shorter values would mask ordinary words


class Redactor:
    """Replaces `secrets`, token-shaped text and customers' identifiers by `***`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len,
                              reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        text = _PATTERNS[0].sub(MASK, text)
        text = _PATTERNS[1].sub(lambda m: m.group(1) + MASK, text)
        for pattern in _CUSTOMER_PATTERNS:
            text = pattern.sub(MASK, text)
        return text


def configure_logging(secrets: Iterable[str] = (), level: int | str = logging.INFO) -> None:
    """Timestamped lines with the level and the logger's name on stderr, redacted; the noisy
    request loggers at WARNING. Safe to call again (the redaction list is replaced)."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    install_redaction(Redactor(secrets))


_plain_factory: Callable[..., logging.LogRecord] | None = None


def install_redaction(redact: Callable[[str], str]) -> None:
    """Makes every log record of this process pass through `redact` when it is created."""
    global _plain_factory
    if _plain_factory is None:
        _plain_factory = logging.getLogRecordFactory()
    plain = _plain_factory

    def redacted_record(*args, **kwargs) -> logging.LogRecord:
        record = plain(*args, **kwargs)
        try:
            record.msg, record.args = redact(record.getMessage()), None
        except Exception:  # a bad format string: the handler reports it, redacted
            record.msg, record.args = redact(f"{record.msg!s} {record.args!r}"), None
        if record.exc_info:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_text = record.exc_text.rstrip("\n")
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(redacted_record)

"""Local stand-ins for the WhatsApp Cloud (Graph), Slack Web and Telegram Bot APIs.

Real HTTP servers on 127.0.0.1 (port 0) that answer like the real APIs and record what they
receive. ``opsbot demo`` and the tests point the real client libraries at them.
"""

from bot.whatsapp.graph_transport import pywa_async_http_client, pywa_http_client
from sandbox.graph import FakeGraph
from sandbox.server import FakeServer, Recorded, Reply
from sandbox.slack import FakeSlack
from sandbox.telegram import FakeTelegram

__all__ = [
    "FakeGraph",
    "FakeServer",
    "FakeSlack",
    "FakeTelegram",
    "Recorded",
    "Reply",
    "pywa_async_http_client",
    "pywa_http_client",
]

"""One bounded body reader for every webhook, attacked over real HTTP without credentials.

A body above the limit gets 413 at once: when Content-Length says so, before the body is
read (the server answers although most of the declared body never comes); when a chunked
body grows past the limit, as soon as it does (the server answers although the body never
ends). A server that read on would never answer either request.
"""

import json

import pytest

from bot.core import tunables
from tests.bot.webhooks.http_kit import errors, post_chunked, post_declaring, server_log
from tests.bot.world import running_world

FIVE_MB = 5 * 1024 * 1024
UNSIGNED = {  # path -> headers of a request that carries no credentials
    "/slack/events": {"Content-Type": "application/x-www-form-urlencoded"},
    "/telegram/webhook": {"Content-Type": "application/json"},
    "/webhooks/whatsapp": {"Content-Type": "application/json"},
}
LIMITS = {
    "/slack/events": "SLACK_MAX_BODY",
    "/telegram/webhook": "TELEGRAM_MAX_BODY",
    "/webhooks/whatsapp": "WHATSAPP_MAX_BODY",
}


@pytest.fixture
def world(db, redis_url, tmp_path):
    with running_world(db, redis_url, tmp_path) as built:
        yield built


def test_the_limits_are_the_documented_ones():
    assert tunables.SLACK_MAX_BODY == tunables.TELEGRAM_MAX_BODY == 1024 * 1024
    assert tunables.WHATSAPP_MAX_BODY == 3 * 1024 * 1024


@pytest.mark.parametrize("path", list(UNSIGNED))
def test_a_declared_5_mb_body_gets_413_before_it_is_read(world, caplog, path):
    with server_log(caplog):
        answer = post_declaring(world.send.base_url, path, UNSIGNED[path], declared=FIVE_MB)
    assert answer.status == 413
    assert answer.headers["connection"] == "close"  # nothing more of it is read
    assert errors(caplog) == []


@pytest.mark.parametrize("path", list(UNSIGNED))
def test_a_chunked_body_that_grows_past_the_limit_gets_413_at_once(world, caplog, path):
    with server_log(caplog):
        status, sent = post_chunked(world.send.base_url, path, UNSIGNED[path], total=8 * FIVE_MB)
    assert status == 413
    assert sent < 8 * FIVE_MB  # answered while the body was still coming
    assert errors(caplog) == []


@pytest.mark.parametrize("path", list(UNSIGNED))
def test_a_body_at_the_limit_is_read_and_then_checked(world, path):
    limit = getattr(tunables, LIMITS[path])
    body = b"a" * limit
    answer = post_declaring(world.send.base_url, path, UNSIGNED[path], declared=limit, sent=body)
    assert answer.status in (401, 403)  # read whole, then refused for its missing credentials


@pytest.mark.parametrize(("path", "text"), [("/slack/events", "1 MB"),
                                            ("/telegram/webhook", "1 MB"),
                                            ("/webhooks/whatsapp", "3 MB")])
def test_the_413_names_the_limit(world, path, text):
    answer = post_declaring(world.send.base_url, path, UNSIGNED[path], declared=FIVE_MB)
    assert json.loads(answer.body) == {"error": f"body larger than {text}"}

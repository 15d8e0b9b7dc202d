"""FakeSlack answers the real slack_sdk AsyncWebClient over HTTP."""

import asyncio

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from sandbox.slack import FakeSlack

TOKEN = "xoxb-TEST"
CARD = [{"type": "section", "text": {"type": "mrkdwn", "text": "*T-12* Cambio de envío"}}]


@pytest.fixture
def slack():
    with FakeSlack(token=TOKEN) as fake:
        yield fake


def run(coro):
    return asyncio.run(coro)


def client(fake, **kwargs):
    return AsyncWebClient(token=TOKEN, base_url=fake.url + "/api/", **kwargs)


def test_auth_test_and_post_then_update_a_card(slack):
    async def scenario():
        web = client(slack)
        auth = await web.auth_test()
        first = await web.chat_postMessage(channel="C1", text="T-12", blocks=CARD)
        second = await web.chat_postMessage(channel="C1", text="T-13")
        updated = await web.chat_update(channel="C1", ts=first["ts"], text="accepted")
        return auth, first, second, updated

    auth, first, second, updated = run(scenario())
    assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == ("UBOT", "B0", "T0")
    assert first["ts"] != second["ts"] and first["channel"] == "C1"
    assert first["message"]["blocks"] == CARD
    assert updated["ts"] == first["ts"] and updated["message"]["text"] == "accepted"
    post = slack.calls("chat.postMessage")[0]
    assert post.json["blocks"] == CARD and post.headers["authorization"] == f"Bearer {TOKEN}"
    assert [m["text"] for m in slack.sent_messages("C1")] == ["T-12", "T-13"]
    assert slack.requests[0].name == "auth.test"


def test_dm_ephemeral_user_and_view(slack):
    async def scenario():
        web = client(slack)
        dm = await web.conversations_open(users="U012ABC")
        eph = await web.chat_postEphemeral(channel="C1", user="U012ABC", text="only you")
        user = await web.users_info(user="U012ABC")
        view = await web.views_open(trigger_id="t1", view={"type": "modal", "blocks": []})
        return dm, eph, user, view

    slack.add_user("U012ABC", "Ana García", email="ana@example.test", tz="Europe/Madrid")
    dm, eph, user, view = run(scenario())
    assert dm["channel"]["id"] == slack.dm_channel("U012ABC")
    assert dm["channel"]["id"].startswith("D")
    assert eph["message_ts"]
    assert user["user"]["profile"]["email"] == "ana@example.test"
    assert view["view"]["id"].startswith("V") and view["view"]["type"] == "modal"
    # slack_sdk sends `params=` methods as a POST with a query string, users.info as a GET
    opened, info = slack.calls("conversations.open")[0], slack.calls("users.info")[0]
    assert (opened.method, opened.query, opened.params["users"]) == (
        "POST",
        {"users": "U012ABC"},
        "U012ABC",
    )
    assert (info.method, info.query) == ("GET", {"user": "U012ABC"})


def test_form_encoded_calls_are_parsed(slack):
    async def call():
        return await client(slack).api_call(
            "chat.postMessage",
            data={"channel": "C9", "text": "hi", "blocks": '[{"type": "divider"}]'},
        )

    assert run(call())["ok"]
    rec = slack.calls("chat.postMessage")[0]
    assert rec.form["channel"] == "C9"
    assert rec.params["blocks"] == [{"type": "divider"}]


def test_unknown_method_missing_message_and_bad_token(slack):
    async def call(method, token=TOKEN, **kwargs):
        web = AsyncWebClient(token=token, base_url=slack.url + "/api/")
        with pytest.raises(SlackApiError) as caught:
            await web.api_call(method, json=kwargs)
        return caught.value.response["error"]

    assert run(call("nope.nothing")) == "unknown_method"
    assert run(call("chat.update", channel="C1", ts="1.000001", text="x")) == "message_not_found"
    assert run(call("auth.test", token="xoxb-WRONG")) == "invalid_auth"


def test_rate_limit_answers_429_with_retry_after_and_the_sdk_retries(slack):
    slack.fail_next(1, status=429, retry_after=0, match="chat.postMessage")

    async def scenario():
        plain = client(slack)
        with pytest.raises(SlackApiError) as caught:
            await plain.chat_postMessage(channel="C1", text="first")
        retrying = client(
            slack, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)]
        )
        slack.fail_next(1, status=429, retry_after=0, match="chat.postMessage")
        return caught.value.response, await retrying.chat_postMessage(channel="C1", text="again")

    limited, ok = run(scenario())
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "0"
    assert ok["ok"]
    assert [r.status for r in slack.calls("chat.postMessage")] == [429, 429, 200]


def test_response_url_records_what_bolt_would_send(slack):
    async def respond():
        return await AsyncWebhookClient(slack.response_url("abc")).send(
            text="Accepted T-12", replace_original=True
        )

    assert run(respond()).status_code == 200
    (rec,) = slack.responses()
    assert rec.path == "/response/abc" and rec.json["replace_original"] is True

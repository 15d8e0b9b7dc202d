"""Both agent channels through the one `ChannelSender` interface, against the fake Slack Web
API and Telegram Bot API (local servers on port 0 that record what they received)."""

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from notifiers.channels import CardRef, ChannelSender, Recipient
from notifiers.errors import PermanentDeliveryError, TransientDeliveryError
from notifiers.notifications import Button, Notification, with_outcome
from notifiers.slack import SlackSender
from notifiers.telegram import TelegramSender
from sandbox.server import FakeServer
from sandbox.slack import FakeSlack
from sandbox.telegram import FakeTelegram

SLACK_TOKEN = "xoxb-channel-test"
TELEGRAM_TOKEN = "123456:channel-test"

CARD = Notification(
    kind="assigned",
    title="New task T-7: Cambio de envío",
    ref="T-7",
    fields=(("Customer", "Carmen Ruiz"), ("Status", "assigned")),
    buttons=(Button("accept", "Accept", "primary"), Button("decline", "Decline", "danger")),
)


@dataclass
class Channel:
    """One channel's sender and fake, and how that fake tells what it received."""

    sender: ChannelSender
    fake: FakeServer
    agent: Recipient
    team: Recipient
    agent_chat: str  # where the fake puts the agent's card
    send_method: str  # the API method that posts a card
    refusal: dict  # `fail_next` arguments for a refusal the way this API says it
    texts: Callable[[], dict[tuple[str, str], str]]  # (chat, message) -> text, after edits


def _slack(fake: FakeSlack) -> Channel:
    return Channel(
        sender=SlackSender(SLACK_TOKEN, fake.url),
        fake=fake,
        agent=Recipient("U0ANA"),
        team=Recipient("C0LOGI", team=True),
        agent_chat=fake.dm_channel("U0ANA"),
        send_method="chat.postMessage",
        refusal={"status": 200, "body": {"ok": False, "error": "not_in_channel"}},
        texts=lambda: {(chat, m["ts"]): m["text"] for chat, m in fake.posted()},
    )


def _telegram(fake: FakeTelegram) -> Channel:
    return Channel(
        sender=TelegramSender(TELEGRAM_TOKEN, fake.url),
        fake=fake,
        agent=Recipient("111"),
        team=Recipient("-100123", team=True),
        agent_chat="111",
        send_method="sendMessage",
        refusal={"status": 403},  # "Forbidden: bot was blocked by the user"
        texts=lambda: {(str(chat), str(m["message_id"])): m["text"]
                       for chat, m in fake.posted()},
    )


@pytest.fixture(params=["slack", "telegram"])
def channel(request) -> Iterator[Channel]:
    if request.param == "slack":
        with FakeSlack(token=SLACK_TOKEN) as fake:
            yield _slack(fake)
    else:
        with FakeTelegram(token=TELEGRAM_TOKEN) as fake:
            yield _telegram(fake)


def test_a_card_reaches_the_agent_in_a_direct_message(channel):
    ref = channel.sender.send(channel.agent, CARD)
    assert ref.chat == channel.agent_chat
    assert CARD.title in channel.texts()[(ref.chat, ref.message)]


def test_a_card_reaches_a_team_channel_as_addressed(channel):
    ref = channel.sender.send(channel.team, CARD)
    assert ref.chat == channel.team.address
    assert list(channel.texts()) == [(ref.chat, ref.message)]


def test_an_update_edits_the_delivered_card(channel):
    ref = channel.sender.send(channel.agent, CARD)
    closed = with_outcome(CARD, line="Closed by Ana García at 10:42", status="closed")
    channel.sender.update(ref, closed)
    assert "Closed by Ana García at 10:42" in channel.texts()[(ref.chat, ref.message)]
    channel.sender.update(ref, closed)  # the same edit again changes nothing and is no error


def test_a_refusal_is_permanent(channel):
    channel.fake.fail_next(1, match=channel.send_method, **channel.refusal)
    with pytest.raises(PermanentDeliveryError):
        channel.sender.send(channel.agent, CARD)


def test_a_rate_limit_is_transient_and_says_how_long_to_wait(channel):
    channel.fake.fail_next(1, status=429, retry_after=7, match=channel.send_method)
    with pytest.raises(TransientDeliveryError) as raised:
        channel.sender.send(channel.team, CARD)
    assert raised.value.retry_after == 7.0
    assert channel.sender.send(channel.team, CARD).chat == channel.team.address


def test_a_server_error_is_transient(channel):
    channel.fake.fail_next(1, status=502, match=channel.send_method)
    with pytest.raises(TransientDeliveryError) as raised:
        channel.sender.send(channel.agent, CARD)
    assert raised.value.retry_after is None


def test_calls_from_several_threads_go_out_at_the_same_time(channel):
    channel.sender.send(channel.team, CARD)  # connected (Telegram: its getMe), DM opened
    channel.fake.reset()
    channel.fake.delay = 0.5  # the API far away: each call answered half a second later
    with ThreadPoolExecutor(3) as lanes:
        list(lanes.map(lambda _: channel.sender.send(channel.agent, CARD), range(3)))
    arrived = [r.at.timestamp() for r in channel.fake.calls(channel.send_method)]
    assert len(arrived) == 3 and max(arrived) - min(arrived) < 0.5  # none waited for another


def test_senders_name_their_channel_and_hide_their_token():
    senders = [SlackSender(SLACK_TOKEN, "http://slack.test"),
               TelegramSender(TELEGRAM_TOKEN, "http://telegram.test")]
    assert [sender.channel for sender in senders] == ["slack", "telegram"]
    assert [token for sender in senders for token in (SLACK_TOKEN, TELEGRAM_TOKEN)
            if token in repr(sender)] == []


def test_slack_opens_an_agents_direct_message_once():
    with FakeSlack(token=SLACK_TOKEN) as fake:
        sender = SlackSender(SLACK_TOKEN, fake.url)
        first = sender.send(Recipient("U0ANA"), CARD)
        second = sender.send(Recipient("U0ANA"), CARD)
        sender.send(Recipient("C0LOGI", team=True), CARD)
        assert first.chat == second.chat == fake.dm_channel("U0ANA")
        assert [r.params["users"] for r in fake.calls("conversations.open")] == ["U0ANA"]
        posted_to = [params["channel"] for params in fake.sent_messages()]
        assert posted_to == [first.chat, first.chat, "C0LOGI"]


def test_slack_keeps_its_connection_open_between_calls():
    # slack_sdk's urllib client opened a connection (on https: a TLS handshake) per call.
    with FakeSlack(token=SLACK_TOKEN) as fake:
        sender = SlackSender(SLACK_TOKEN, fake.url)
        assert sender.client is sender.client
        refs = [sender.send(Recipient("C0LOGI", team=True), CARD) for _ in range(5)]
        sender.update(refs[0], with_outcome(CARD, line="Accepted by Ana", status="accepted"))
        assert len(fake.calls("chat.postMessage")) == 5
        assert fake.connections_opened == 1


def test_slack_forgets_the_direct_message_after_a_failure_and_refuses_a_bad_token():
    with FakeSlack(token=SLACK_TOKEN) as fake:
        sender = SlackSender(SLACK_TOKEN, fake.url)
        fake.fail_next(1, status=500, match="chat.postMessage")
        with pytest.raises(TransientDeliveryError):
            sender.send(Recipient("U0ANA"), CARD)
        assert sender.dm_channels == {}  # the next attempt opens the DM again
        wrong = SlackSender("xoxb-wrong", fake.url)
        with pytest.raises(PermanentDeliveryError, match="invalid_auth"):
            wrong.send(Recipient("C0LOGI", team=True), CARD)
        with pytest.raises(PermanentDeliveryError, match="no Slack user or channel"):
            sender.send(Recipient(""), CARD)


def test_telegram_renders_the_buttons_as_an_inline_keyboard():
    with FakeTelegram(token=TELEGRAM_TOKEN) as fake:
        ref = TelegramSender(TELEGRAM_TOKEN, fake.url).send(Recipient("111"), CARD)
        [sent] = fake.sent_messages(chat_id=111)
        assert sent["parse_mode"] == "HTML"
        keyboard = sent["reply_markup"]["inline_keyboard"]
        assert [b["callback_data"] for b in keyboard[0]] == ["accept:T-7", "decline:T-7"]
        assert ref == CardRef("111", "1")

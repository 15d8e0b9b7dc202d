"""The Media field of a card becomes a link once delivery signed one; its words stay escaped."""

import pytest

from notifiers.notifications import MediaRef, Notification
from notifiers.slack import render_slack
from notifiers.telegram import render_telegram

URL = "https://ops.example.com/media/MQ.abc-_"
HOSTILE = "document: <!channel> a&b|<https://evil.example|x>.pdf"


def card(media: MediaRef | None) -> Notification:
    return Notification(kind="assigned", title="New task T-1: box", ref="T-1",
                        fields=(("Customer", "Lucía"),
                                ("Media", "document (open it in the WhatsApp conversation)")),
                        media=media)


def slack_fields(notification: Notification) -> list[str]:
    return [f["text"] for block in render_slack(notification)["blocks"]
            for f in block.get("fields") or ()]


def test_the_media_survives_the_outbox_without_its_url():
    linked = card(MediaRef(7, "image")).with_media_link(URL)
    back = Notification.from_dict(linked.as_dict())
    assert back.media == MediaRef(7, "image")  # a link is signed at each send, never stored
    assert Notification.from_dict(card(None).as_dict()).media is None


@pytest.mark.parametrize("media", [None, MediaRef(7, "image")])
def test_without_a_link_the_field_reads_as_before(media):
    assert slack_fields(card(media))[1] == (
        "*Media*\ndocument (open it in the WhatsApp conversation)")
    assert "<a href" not in render_telegram(card(media))["text"]


def test_slack_links_the_media_with_its_words_escaped():
    field = slack_fields(card(MediaRef(7, HOSTILE)).with_media_link(URL))[1]
    assert field == (f"*Media*\n<{URL}|document: &lt;!channel&gt; a&amp;b/&lt;https://"
                     f"evil.example/x&gt;.pdf>")


def test_telegram_links_the_media_with_its_words_escaped():
    text = render_telegram(card(MediaRef(7, HOSTILE)).with_media_link(URL))["text"]
    assert (f'<b>Media:</b> <a href="{URL}">document: &lt;!channel&gt; a&amp;b|&lt;https://'
            f'evil.example|x&gt;.pdf</a>') in text

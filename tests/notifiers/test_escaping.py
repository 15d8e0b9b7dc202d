"""Customer text reaches agents escaped for the channel, and within its limits, whole.

Slack: no customer string can mention (`<!channel>`, `<@U123>`) or link (`<url|label>`) in any
text of a card, `text` fallback included. Telegram: the HTML card is cut before escaping, so it
is well-formed and at most 4,096 UTF-16 units, however long or hostile the text.
"""

import re
from html.parser import HTMLParser

import pytest

from notifiers.notifications import Button, Notification
from notifiers.slack import escape_slack, fit_slack, render_slack
from notifiers.telegram import (
    MAX_TEXT,
    callback_answer_text,
    fit_text,
    render_telegram,
)
from notifiers.texts import ELLIPSIS, shorten

HOSTILE = ["<!channel>", "<@U123>", "<https://evil.example|Click me>", "a & b <b>bold</b>"]
LONG = "x" * 10_000


def card(hostile: str, text: str | None = None) -> Notification:
    return Notification(
        kind="follow_up",
        title=f"The customer wrote on T-7: {hostile}",
        ref="T-7",
        fields=(("Customer", hostile), ("Status", "assigned")),
        text=text if text is not None else hostile,
        buttons=(Button("accept", "Accept", "primary"),),
        status_line=f"Accepted by {hostile}",
    )


def strings(value):
    """Every string inside a rendered payload."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")  # an & that starts no escape: half an entity


@pytest.mark.parametrize("hostile", HOSTILE)
def test_slack_card_escapes_every_text_the_fallback_included(hostile):
    payload = render_slack(card(hostile))
    for text in strings(payload):
        assert "<" not in text and ">" not in text.replace("> ", "", 1), text
        assert not ENTITY.search(text), text
    assert payload["text"] == escape_slack(
        f"The customer wrote on T-7: {hostile} — Accepted by {hostile}")


def test_escape_slack_is_the_one_escaper():
    assert escape_slack("<!channel> <@U123> <https://evil.example|Click me> & co") == (
        "&lt;!channel&gt; &lt;@U123&gt; &lt;https://evil.example|Click me&gt; &amp; co")


@pytest.mark.parametrize("text", [LONG, "<" * 10_000, "&" * 10_000, "a\n" * 5_000])
def test_slack_long_text_is_cut_before_escaping(text):
    payload = render_slack(card("<!channel>", text=text))
    quote = payload["blocks"][2]["text"]["text"]
    assert len(quote) <= 3000
    assert not ENTITY.search(quote) and not quote.endswith("&")
    assert quote.endswith(ELLIPSIS)
    for field in payload["blocks"][1]["fields"]:
        assert len(field["text"]) <= 2000


class _WellFormed(HTMLParser):
    """Fails on a tag Telegram does not know, on an unclosed or unbalanced tag."""

    ALLOWED = {"b", "i", "blockquote"}

    def __init__(self):
        super().__init__(convert_charrefs=False)
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        assert tag in self.ALLOWED, tag
        self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open.pop() == tag, tag

    def handle_entityref(self, name):
        assert name in ("amp", "lt", "gt"), name

    def handle_charref(self, name):
        raise AssertionError(f"unexpected &#{name};")


def well_formed(html: str) -> None:
    parser = _WellFormed()
    parser.feed(html)
    parser.close()
    assert parser.open == []
    assert not ENTITY.search(html)
    assert "<" not in re.sub(r"</?(b|i|blockquote)>", "", html)


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@pytest.mark.parametrize("hostile", HOSTILE)
def test_telegram_card_escapes_customer_text(hostile):
    html = render_telegram(card(hostile))["text"]
    well_formed(html)
    assert "&lt;!channel&gt;" in html or "<!channel>" not in hostile


@pytest.mark.parametrize("text", [LONG, "<" * 10_000, "&" * 10_000, "é" * 10_000,
                                  "😀" * 10_000, "e\u0301" * 5_000, "<b>" * 3_000])
def test_telegram_card_of_a_long_text_is_cut_before_escaping(text):
    html = render_telegram(card("<@U123>" * 200, text=text))["text"]
    assert utf16(html) <= MAX_TEXT
    well_formed(html)
    assert html.count("<blockquote>") == 1 and "</blockquote>" in html
    assert "Accepted by" in html  # the status line keeps its room
    assert ELLIPSIS + "</blockquote>" in html


def test_telegram_short_cards_are_as_before():
    html = render_telegram(card("Carmen Ruiz"))["text"]
    assert html == (
        "<b>The customer wrote on T-7: Carmen Ruiz</b>\n<b>Customer:</b> Carmen Ruiz\n"
        "<b>Status:</b> assigned\n<blockquote>Carmen Ruiz</blockquote>\n"
        "<i>Accepted by Carmen Ruiz</i>")


def test_telegram_plain_answers_and_callback_answers_fit():
    assert fit_text(LONG) == "x" * (MAX_TEXT - 1) + ELLIPSIS
    assert utf16(fit_text("😀" * 3_000)) <= MAX_TEXT
    assert callback_answer_text("y" * 500) == "y" * 199 + ELLIPSIS
    assert utf16(callback_answer_text("😀" * 150)) <= 200
    assert callback_answer_text("T-7 accepted") == "T-7 accepted"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [("hello", 5, "hello"), ("hello!", 5, "hell…"), ("", 0, ""), ("ab", 0, ""),
     ("cafe\u0301s", 5, "caf…"),  # the accent stays with its e: both go
     ("👍🏽👍🏽", 3, "👍🏽…"), ("👩\u200d💻x", 3, "…")],
)
def test_shorten_cuts_on_a_character_boundary(text, limit, expected):
    assert shorten(text, limit) == expected


def test_a_text_whose_escaped_size_is_the_limit_is_kept_whole_and_one_more_is_cut():
    assert fit_slack("&" * 600, 3000) == "&amp;" * 600
    assert fit_slack("&" * 601, 3000) == "&amp;" * 599 + ELLIPSIS
    assert fit_slack("a<" * 750, 3000) == "a&lt;" * 599 + "a" + ELLIPSIS

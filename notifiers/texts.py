"""Bounding text to what a channel takes: the limits, and one way to cut.

Text is cut before it is escaped for a channel (escaping after a cut could leave half an entity
or an unclosed tag), on a character boundary, with an ellipsis that says something is missing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

ELLIPSIS = "…"
# A WhatsApp text message's body holds at most 4,096 characters (Cloud API, text messages).
WHATSAPP_TEXT_LIMIT = 4096
# What a template may echo back of a customer's own words ({message.text}, {contact.name}):
# enough to recognise them, never a 100k-character echo.
ECHO_LIMIT = 500

# Characters that belong to the one before them: cutting in front of one would split what a
# person sees as one character (an accent, an emoji's modifier or variation, a joined emoji).
_JOINERS = frozenset("\u200d\ufe0e\ufe0f")


def shorten(text: str, limit: int, *, size: Callable[[str], int] | None = None) -> str:
    """`text` when it fits in `limit`, else its longest prefix that fits with an ellipsis.

    `size` gives the room a text takes where it goes (escaped, or in UTF-16 units), the sum
    of its characters' rooms; by default its length. It measures the whole text once (a
    text that fits costs no more), then each character only when a cut is needed. The cut
    never splits a character, nor an accent or an emoji from what it belongs to. Returns ""
    when not even the ellipsis fits.
    """
    measure = size or len
    if measure(text) <= limit:
        return text
    room = limit - measure(ELLIPSIS)
    if room < 0:
        return ""
    end, used = 0, 0
    for char in text:
        used += measure(char)
        if used > room:
            break
        end += 1
    while end and _inside_a_character(text, end):
        end -= 1
    return text[:end] + ELLIPSIS


def echo(text: str | None) -> str:
    """Customer text as a template may echo it back: at most ECHO_LIMIT characters."""
    return shorten(text or "", ECHO_LIMIT)


def fit_whatsapp(text: str) -> str:
    """A message for a customer, cut to what WhatsApp accepts in one text message."""
    return shorten(text, WHATSAPP_TEXT_LIMIT)


def _inside_a_character(text: str, end: int) -> bool:
    """True when a cut before `text[end]` would split one visible character."""
    following, previous = text[end], text[end - 1]
    return (unicodedata.combining(following) != 0 or following in _JOINERS
            or previous == "\u200d" or 0x1F3FB <= ord(following) <= 0x1F3FF)

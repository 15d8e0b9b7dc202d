"""Durations, templates, text normalisation and language detection."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rules import (
    Priority,
    detect_language,
    format_duration,
    parse_duration,
    pick_language_text,
    render_template,
)
from rules.text import normalize, tokenize


@pytest.mark.parametrize(("text", "expected"), [
    ("15m", timedelta(minutes=15)), ("2h", timedelta(hours=2)), ("1d", timedelta(days=1)),
    ("90s", timedelta(seconds=90)), ("1h30m", timedelta(hours=1, minutes=30)),
    ("1d2h", timedelta(days=1, hours=2)), (" 2H ", timedelta(hours=2)),
])
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["15 minutes", "", "h", "1.5h", "30m1h", "10", 10, None])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(("td", "text"), [
    (timedelta(minutes=15), "15 min"), (timedelta(hours=2), "2 h"),
    (timedelta(minutes=90), "1 h 30 min"), (timedelta(days=1), "1 d"),
    (timedelta(seconds=45), "45 s"), (timedelta(days=1, hours=4), "1 d 4 h"),
])
def test_format_duration(td: timedelta, text: str) -> None:
    assert format_duration(td) == text


def test_render_template_nested_flat_and_derived() -> None:
    template = "Hola {contact.first_name}, #{task.number} ({task.ref}) en {sla.first_response}"
    nested = {"contact": {"name": "Ana García"}, "task": {"number": 12},
              "sla": {"first_response": timedelta(hours=4)}}
    flat = {"contact.first_name": "Ana", "task.number": 12, "task.ref": "T-12",
            "sla.first_response": "4 h"}
    expected = "Hola Ana, #12 (T-12) en 4 h"
    assert render_template(template, nested) == expected
    assert render_template(template, flat) == expected


@pytest.mark.parametrize("name", ["   ", "\u3000", "", None])
def test_a_blank_name_has_no_first_name(name: str | None) -> None:
    assert render_template("Hola {contact.first_name}!", {"contact": {"name": name}}) == "Hola !"


def test_render_template_missing_values_and_braces() -> None:
    assert render_template("a{contact.name}b {{literal}}", {}) == "ab {literal}"


def test_pick_language_text() -> None:
    texts = {"es": "hola", "en": "hi"}
    assert pick_language_text(texts, "en", "es") == "hi"
    assert pick_language_text(texts, "fr", "es") == "hola"
    assert pick_language_text({"en": "hi"}, "fr", "es") == "hi"
    assert pick_language_text({}, "es", "es") is None


@pytest.mark.parametrize(("text", "tokens"), [
    ("¿Dónde está mi ENVÍO?", ["¿", "donde", "esta", "mi", "envio", "?"]),
    ("Ñandú, über", ["nandu", ",", "uber"]),
    ("ok 👍", ["ok", "👍"]),
])
def test_tokenize(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens
    assert normalize("ÁÉÍÓÚ") == "aeiou"


@pytest.mark.parametrize(("text", "language"), [
    ("Hola, ¿tenéis la chaqueta en talla M?", "es"),
    ("quiero cambiar la dirección de envío", "es"),
    ("Hi, is the blue jacket available?", "en"),
    ("my order arrived broken", "en"),
    ("ok", None), ("👍", None), ("", None),
])
def test_detect_language(text: str, language: str | None) -> None:
    assert detect_language(text) == language


def test_priority_order_and_raise() -> None:
    assert Priority.normal.raised() is Priority.high
    assert Priority.urgent.raised() is Priority.urgent
    assert Priority.low.raised(2) is Priority.high
    assert Priority.highest(Priority.low, Priority.high, Priority.normal) is Priority.high
    assert [p.rank for p in Priority] == [0, 1, 2, 3]

"""Text normalisation shared by keyword matching and language detection."""

from __future__ import annotations

import re
import unicodedata

# Emoji and punctuation become tokens of their own so that `👍` can be a keyword.
_TOKEN = re.compile(r"\w+|[^\w\s]")
# Combining marks left by NFKD (the accents of á, é, ñ, ü...).
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")



def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOP_WORDS = {
    "es": _words(
        "el la los las un una de del que y en por para con mi mis tu su es esta estan "
        "hola buenas buenos dias tardes gracias quiero necesito tienen tiene hay como cuando "
        "donde pedido envio no si pero al lo me se le nos muy favor"
    ),
    "en": _words(
        "the an of and in on for with my your is are this that hello hi thanks thank "
        "want need have has there how when where order shipping not yes but to we "
        "please can could would you it do does"
    ),
}
_SPANISH_MARKS = frozenset("ñ¿¡áéíóú")


def normalize(text: str) -> str:
    """Return `text` lower-cased with accents removed (`Envío` -> `envio`)."""
    folded = text.casefold()
    if folded.isascii():  # the common case, and the hot path of every evaluation
        return folded
    return _COMBINING.sub("", unicodedata.normalize("NFKD", folded))


def tokenize(text: str) -> list[str]:
    """Return the normalised word (and emoji/punctuation) tokens of `text`, in order."""
    return _TOKEN.findall(normalize(text))


def detect_language(text: str, tokens: list[str] | None = None) -> str | None:
    """Return 'es' or 'en' from a stop-word count; None when the text gives no clear signal.
    Pass `tokens` (from `tokenize(text)`) to avoid tokenising twice."""
    tokens = tokenize(text) if tokens is None else tokens
    scores = {lang: len([t for t in tokens if t in words]) for lang, words in _STOP_WORDS.items()}
    scores["es"] += len(_SPANISH_MARKS.intersection(text.lower()))
    if scores["es"] == scores["en"]:
        return None
    return "es" if scores["es"] > scores["en"] else "en"

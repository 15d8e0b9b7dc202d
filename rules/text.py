"""Text normalisation shared by keyword matching and language detection."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

# Emoji and punctuation become tokens of their own so that `👍` can be a keyword.
_TOKEN = re.compile(r"\w+|[^\w\s]")
# Combining marks left by NFKD (the accents of á, é, ñ, ü...).
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


# Typography phones and word processors put in for the plain ASCII forms admins type.
_TYPOGRAPHY = str.maketrans({
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u02bc\u02b9\u00b4", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
})
# Detected unless a rules file names more: the languages our customers write in.
DETECTED_LANGUAGES = ("es", "en", "fr", "de", "pt", "it", "ca")
# How much likelier the best language must be than the next one, else None. Measured on the
# table of tests/rules/test_language.py: 0.1 keeps 69/70 and refuses `ok`, `lol`, `vale`;
# 0.3 refuses keyboard mashes too but loses 1 short message in 8.
_MIN_DISTANCE = 0.1
_MIN_LETTERS = 3  # `k`, `ok`, `xD`: no language, whatever the statistics say
_LETTER = re.compile(r"[^\W\d_]")
_WORD = re.compile(r"[^\W\d_]+")


def normalize(text: str) -> str:
    """Return `text` lower-cased, with accents removed (`Envío` -> `envio`), compatibility
    forms folded (`ＰＥＤＩＤＯ`, `ﬁ`) and typographic quotes and dashes made plain
    (`doesn’t` -> `doesn't`, `—` -> `-`)."""
    folded = text.casefold()
    if folded.isascii():  # the common case, and the hot path of every evaluation
        return folded
    folded = folded.translate(_TYPOGRAPHY)
    if folded.isascii():
        return folded
    # NFKD is NFKC's compatibility folding, with accents split off so they can be dropped.
    return _COMBINING.sub("", unicodedata.normalize("NFKD", folded))


def tokenize(text: str) -> list[str]:
    """Return the normalised word (and emoji/punctuation) tokens of `text`, in order."""
    return _TOKEN.findall(normalize(text))


def detect_language(text: str, named: Iterable[str] = ()) -> str | None:
    """Return the ISO 639-1 code of the language `text` is written in, among
    DETECTED_LANGUAGES and the `named` ones (those a rules file names; codes lingua does not
    know are left out). When the text is unclear among all of them, two or more `named`
    languages break the tie for a text of two words or more: short Spanish, Catalan and
    Portuguese look alike, and the business serves the ones it names. None when the text
    still gives no clear signal (`ok`, `👍`, `12345`, `hello`: one word says too little)."""
    if len(_LETTER.findall(text)) < _MIN_LETTERS:
        return None
    named = frozenset(named)
    found = _detector(frozenset(DETECTED_LANGUAGES) | named).detect_language_of(text)
    if found is None and len(named) > 1 and len(_WORD.findall(text)) > 1:
        found = _detector(named).detect_language_of(text)
    return found.iso_code_639_1.name.lower() if found is not None else None


def load_language_models(named: Iterable[str] = ()) -> None:
    """Loads the models `detect_language` uses for these `named` languages (about a second
    and 180 MB): a worker does it at start rather than on its first message."""
    _detector(frozenset(DETECTED_LANGUAGES) | frozenset(named))


@functools.cache
def _detector(codes: frozenset[str]) -> LanguageDetector:
    # Built once per set of languages, its models loaded at once.
    languages = [Language.from_iso_code_639_1(code) for code in map(_iso_code, sorted(codes))
                 if code is not None]
    return (LanguageDetectorBuilder.from_languages(*languages)
            .with_minimum_relative_distance(_MIN_DISTANCE)
            .with_preloaded_language_models().build())


def _iso_code(code: str) -> IsoCode639_1 | None:
    try:
        return IsoCode639_1.from_str(code)
    except ValueError:
        return None

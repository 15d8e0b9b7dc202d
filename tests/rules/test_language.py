"""Language: detection on short real-style messages, typography before keyword matching,
the reply language, and the out-of-window template's languages (issue 15 item 3)."""

from __future__ import annotations

from collections import Counter

import pytest

from rules import (
    ContactFacts,
    HistoryFacts,
    MessageFacts,
    TemplateRef,
    evaluate,
    pick_language_text,
)
from rules import engine as engine_module
from rules.errors import RulesError
from rules.text import detect_language, tokenize
from tests.rules.helpers import FRIDAY_10, config_with, decide

# Short messages as customers write them: typos, no accents, no final punctuation.
SHORT_MESSAGES = {
    "es": ["hola, mi pedido no ha llegado todavia", "cuanto tarda el envio a valencia?",
           "quiero devolver las zapatillas", "buenas, teneis la talla 42?",
           "me ha llegado roto el paquete", "necesito la factura de mi compra",
           "a que hora abris mañana", "no me funciona el codigo de descuento",
           "puedo cambiar la direccion de entrega", "gracias por la ayuda, todo perfecto"],
    "en": ["hi, my order hasn't arrived yet", "how long does shipping take?",
           "I want to return the shoes", "do you have this in size 9",
           "the parcel arrived damaged", "can I get an invoice please",
           "what time do you open tomorrow", "the discount code doesn't work",
           "can I change my delivery address", "thanks for your help, all good"],
    "fr": ["bonjour, ma commande n'est pas arrivée", "combien de temps pour la livraison ?",
           "je voudrais retourner les chaussures", "vous avez la taille 42 ?",
           "le colis est arrivé abîmé", "j'ai besoin de la facture svp",
           "vous ouvrez à quelle heure demain", "le code promo ne marche pas",
           "je peux changer l'adresse de livraison ?", "merci pour votre aide, c'est parfait"],
    "de": ["hallo, meine Bestellung ist noch nicht da", "wie lange dauert der Versand?",
           "ich möchte die Schuhe zurückschicken", "habt ihr die in Größe 42",
           "das Paket kam beschädigt an", "ich brauche bitte eine Rechnung",
           "wann macht ihr morgen auf", "der Rabattcode funktioniert nicht",
           "kann ich die Lieferadresse ändern", "danke für die Hilfe, alles gut"],
    "pt": ["olá, a minha encomenda ainda não chegou", "quanto tempo demora o envio?",
           "quero devolver os sapatos", "vocês têm o tamanho 42?",
           "a caixa chegou danificada", "preciso da fatura por favor",
           "a que horas abrem amanhã", "o código de desconto não funciona",
           "posso mudar o endereço de entrega", "obrigado pela ajuda, está tudo certo"],
    "it": ["ciao, il mio ordine non è ancora arrivato", "quanto ci vuole per la spedizione?",
           "vorrei restituire le scarpe", "avete la taglia 42?",
           "il pacco è arrivato danneggiato", "mi serve la fattura per favore",
           "a che ora aprite domani", "il codice sconto non funziona",
           "posso cambiare l'indirizzo di consegna", "grazie dell'aiuto, tutto a posto"],
    "ca": ["hola, la meva comanda encara no ha arribat", "quant triga l'enviament?",
           "vull tornar les sabates", "teniu la talla 42?",
           "el paquet ha arribat trencat", "necessito la factura, si us plau",
           "a quina hora obriu demà", "el codi de descompte no funciona",
           "puc canviar l'adreça d'entrega", "gràcies per l'ajuda, tot perfecte"],
}
# Measured 2026-11-30 with lingua-language-detector 2.1: see the README (Language).
OVERALL_AT_LEAST, EACH_AT_LEAST = 0.95, 0.9


def accuracy() -> tuple[float, dict[str, float]]:
    right: Counter[str] = Counter()
    for language, texts in SHORT_MESSAGES.items():
        right[language] = sum(detect_language(text) == language for text in texts)
    each = {lang: right[lang] / len(texts) for lang, texts in SHORT_MESSAGES.items()}
    return right.total() / sum(map(len, SHORT_MESSAGES.values())), each


def test_short_messages_are_detected_in_their_language() -> None:
    overall, each = accuracy()
    print(f"language accuracy {overall:.0%}: "
          + ", ".join(f"{lang} {share:.0%}" for lang, share in each.items()))
    assert overall >= OVERALL_AT_LEAST
    assert min(each.values()) >= EACH_AT_LEAST, each


@pytest.mark.parametrize(("text", "language"), [
    ("Bonjour, je n'ai pas reçu ma commande", "fr"),  # was "es"
    ("Hallo, wo ist meine Bestellung?", "de"),  # was None
])
def test_french_and_german_are_told_apart_from_spanish(text: str, language: str) -> None:
    assert detect_language(text) == language


@pytest.mark.parametrize("text", ["", "ok", "k", "xD", "lol", "zzz", "👍👍", "12345"])
def test_no_language_without_a_clear_signal(text: str) -> None:
    assert detect_language(text) is None


def test_a_language_named_in_the_rules_can_be_detected() -> None:
    assert detect_language("mijn bestelling is nog niet aangekomen") != "nl"
    assert detect_language("mijn bestelling is nog niet aangekomen", named=("nl",)) == "nl"
    # Codes lingua does not know are left out.
    assert detect_language("mi pedido no ha llegado", named=("tlh", "xx")) == "es"


@pytest.mark.parametrize(("typed", "plain"), [
    ("doesn’t work", "doesn't work"),  # the iOS apostrophe
    ("“roto”", '"roto"'),
    ("«roto»", '"roto"'),
    ("pedido — urgente", "pedido - urgente"),
    ("pedido – urgente", "pedido - urgente"),
    ("ＰＥＤＩＤＯ １２", "pedido 12"),  # full-width forms
    ("ﬁnal", "final"),  # a ligature
])
def test_typography_is_normalised_before_matching(typed: str, plain: str) -> None:
    assert tokenize(typed) == tokenize(plain)


def test_a_typographic_apostrophe_matches_the_keyword() -> None:
    config = config_with("- {name: broken, when: {keywords: [\"doesn't work\"]}, then: {}}")
    assert [m.name for m in decide(config, "the app doesn’t work").matched] == ["broken"]


REPLIES = """
- name: any
  then: {reply: {es: "Hola", en: "Hi", fr: "Bonjour"}}
"""


@pytest.mark.parametrize(("text", "reply"), [
    ("Bonjour, ma commande n'est pas arrivée", "Bonjour"),
    ("hi, my order hasn't arrived yet", "Hi"),
    ("hallo, meine Bestellung ist noch nicht da", "Hola"),  # no German text: default_language
])
def test_the_reply_is_in_the_customer_language_else_the_default(text: str, reply: str) -> None:
    config = config_with(REPLIES)
    decision = decide(config, text)
    assert pick_language_text(decision.reply, decision.language,
                              config.default_language) == reply


def test_the_language_is_detected_only_when_asked(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(engine_module, "detect_language",
                        lambda text, named=(): calls.append(text) or "fr")
    decision = evaluate(config_with(REPLIES), message=MessageFacts("bonjour"),
                        contact=ContactFacts("x"), history=HistoryFacts(), now=FRIDAY_10)
    assert calls == []
    assert (decision.language, decision.language, calls) == ("fr", "fr", ["bonjour"])


def test_a_language_condition_still_sees_the_detected_language() -> None:
    config = config_with("- {name: fr, when: {language: fr}, then: {tags: [fr]}}")
    assert decide(config, "Bonjour, ma commande n'est pas arrivée").tags == ("fr",)
    assert decide(config, "hola, mi pedido no ha llegado").tags == ()


@pytest.mark.parametrize(("template", "languages"), [
    ("{name: t, language: es}", ("es",)),  # the one-language form stays valid
    ("{name: t, languages: [es, en]}", ("es", "en")),
    ("{name: t, languages: en}", ("en",)),
])
def test_the_template_takes_one_or_several_languages(template: str,
                                                     languages: tuple[str, ...]) -> None:
    config = config_with(extra=f"out_of_window_template: {template}\n")
    assert config.out_of_window_template.languages == languages
    assert config.out_of_window_template.language == languages[0]


@pytest.mark.parametrize("template", ["{name: t}", "{name: t, languages: []}",
                                      "{name: t, language: es, languages: [en]}"])
def test_a_template_without_exactly_one_way_to_name_languages_is_refused(template: str) -> None:
    with pytest.raises(RulesError, match="out_of_window_template|language"):
        config_with(extra=f"out_of_window_template: {template}\n")


def test_the_template_language_is_the_first_wanted_one_it_has() -> None:
    template = TemplateRef(name="t", languages=["es", "en"])
    assert template.language_for("en", "es") == "en"
    assert template.language_for(None, "fr", "es") == "es"
    assert template.language_for("de") == "es"  # none wanted: its first language

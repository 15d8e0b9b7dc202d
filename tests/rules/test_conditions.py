"""Every `when:` condition, table-driven: does a message match, and with which reasons."""

from __future__ import annotations

import pytest

from rules import HistoryFacts, MessageType

from .helpers import FRIDAY_10, config_with, decide, madrid

RETURNING = HistoryFacts(task_count=3, open_task=True, last_category="sales",
                         days_since_last_contact=12)
NEW = HistoryFacts()

CASES = [
    # keywords: case- and accent-insensitive, whole words and phrases
    ("kw-accent-in-rule", "{keywords: [envío]}", {"text": "Mi ENVIO no llega"}, True),
    ("kw-accent-in-message", "{keywords: [envio]}", {"text": "mi envío"}, True),
    ("kw-whole-word-plural", "{keywords: [pedido]}", {"text": "mis pedidos"}, False),
    ("kw-whole-word-prefix", "{keywords: [envío]}", {"text": "envíos gratis"}, False),
    ("kw-punctuation", "{keywords: [pedido]}", {"text": "¿y mi pedido?"}, True),
    ("kw-phrase", "{keywords: [no funciona]}", {"text": "La tele NO funciona."}, True),
    ("kw-phrase-split", "{keywords: [no funciona]}", {"text": "no sé si funciona"}, False),
    ("kw-emoji", "{keywords: ['👍']}", {"text": "👍"}, True),
    ("kw-any-none", "{keywords: [envío, entrega]}", {"text": "hola"}, False),
    ("kw-all-ok", "{keywords: {all: [cambiar, dirección]}}",
     {"text": "quiero cambiar la direccion"}, True),
    ("kw-all-missing", "{keywords: {all: [cambiar, dirección]}}", {"text": "quiero cambiar"},
     False),
    ("kw-none-blocks", "{keywords: {any: [envío], none: [roto]}}",
     {"text": "envío roto"}, False),
    ("kw-none-passes", "{keywords: {any: [envío], none: [roto]}}", {"text": "envío"}, True),
    ("kw-only-none", "{keywords: {none: [spam]}}", {"text": "hola"}, True),
    # regex on the raw text, case-insensitive
    ("regex-hit", "{regex: 'T-\\d+'}", {"text": "sobre t-123"}, True),
    ("regex-miss", "{regex: '^\\d+$'}", {"text": "12a"}, False),
    # message type, one or a list
    ("type-one", "{type: image}", {"type": MessageType.image}, True),
    ("type-list", "{type: [audio, video]}", {"type": MessageType.image}, False),
    # CRM status, one or a list
    ("status-one", "{customer_status: vip}", {"status": "VIP"}, True),
    ("status-list", "{customer_status: [customer, vip]}", {"status": "lead"}, False),
    # history
    ("hist-first-yes", "{history: {first_contact: true}}", {"history": NEW}, True),
    ("hist-first-no", "{history: {first_contact: true}}", {"history": RETURNING}, False),
    ("hist-returning", "{history: {first_contact: false}}", {"history": RETURNING}, True),
    ("hist-open", "{history: {open_task: true}}", {"history": RETURNING}, True),
    ("hist-no-open", "{history: {open_task: false}}", {"history": RETURNING}, False),
    ("hist-min", "{history: {min_tasks: 3}}", {"history": RETURNING}, True),
    ("hist-max", "{history: {max_tasks: 2}}", {"history": RETURNING}, False),
    ("hist-last-cat", "{history: {last_category: [sales, support]}}", {"history": RETURNING},
     True),
    ("hist-days-gt", "{history: {days_since_last_contact: {gt: 7}}}", {"history": RETURNING},
     True),
    ("hist-days-lt", "{history: {days_since_last_contact: {lt: 7}}}", {"history": RETURNING},
     False),
    ("hist-days-none", "{history: {days_since_last_contact: {gt: 0}}}", {"history": NEW}, False),
    # business hours (Friday 10:00 Madrid is inside; Saturday 10:00 is outside)
    ("bh-inside", "{business_hours: inside}", {"now": FRIDAY_10}, True),
    ("bh-outside", "{business_hours: outside}", {"now": madrid(2026, 3, 7, 10)}, True),
    ("bh-holiday", "{business_hours: outside}", {"now": madrid(2026, 12, 25, 10)}, True),
    # campaigns: click-to-WhatsApp referral and template button payloads
    ("ref-any", "{campaign: {referral: true}}", {"referral": "ad 42 summer"}, True),
    ("ref-none", "{campaign: {referral: true}}", {}, False),
    ("ref-substring", "{campaign: {referral: Summer}}", {"referral": "ad 42 summer"}, True),
    ("ref-other", "{campaign: {referral: winter}}", {"referral": "ad 42 summer"}, False),
    ("ref-false", "{campaign: {referral: false}}", {}, True),
    ("payload-prefix", "{campaign: {button_payload: promo_}}", {"button_payload": "promo_spring"},
     True),
    ("payload-exact", "{campaign: {button_payload: stop}}", {"button_payload": "stop"}, True),
    ("payload-other", "{campaign: {button_payload: promo_}}", {"button_payload": "stop"}, False),
    # WhatsApp Flows: the flow's name (its token up to ":") and its form's answers
    ("flow-name", "{flow: {name: CSAT}}", {"flow_name": "csat"}, True),
    ("flow-other", "{flow: {name: csat}}", {"flow_name": "booking"}, False),
    ("flow-not-a-flow", "{flow: {name: csat}}", {"text": "csat"}, False),
    ("flow-field-value", "{flow: {fields: {rating: [1, 2]}}}",
     {"flow_name": "csat", "flow_fields": {"rating": "2"}}, True),
    ("flow-field-other", "{flow: {fields: {rating: [1, 2]}}}",
     {"flow_name": "csat", "flow_fields": {"rating": "5"}}, False),
    ("flow-field-answered", "{flow: {fields: {comment: true}}}",
     {"flow_fields": {"comment": "lento"}}, True),
    ("flow-field-blank", "{flow: {fields: {comment: true}}}",
     {"flow_fields": {"comment": ""}}, False),
    ("flow-field-text", "{flow: {name: booking, fields: {service: Corte}}}",
     {"flow_name": "booking", "flow_fields": {"service": "corte"}}, True),
    ("flow-field-zero", "{flow: {fields: {rating: 0}}}", {"flow_fields": {"rating": 0}}, True),
    # language: given, else detected from the text
    ("lang-detected", "{language: en}", {"text": "where is my order please"}, True),
    ("lang-given", "{language: [en]}", {"text": "xyz", "language": "en"}, True),
    ("lang-other", "{language: en}", {"text": "¿dónde está mi pedido?"}, False),
    # word_count: words are letters or digits; emoji and punctuation do not count
    ("words-max", "{word_count: {max: 6}}", {"text": "¡Muchas gracias por todo!"}, True),
    ("words-over-max", "{word_count: {max: 3}}", {"text": "¡Muchas gracias por todo!"}, False),
    ("words-emoji-not-words", "{word_count: {max: 0}}", {"text": "👍🙏 !!"}, True),
    ("words-min", "{word_count: {min: 2, max: 2}}", {"text": "ok, thanks 👍"}, True),
    ("words-under-min", "{word_count: {min: 3}}", {"text": "ok, thanks 👍"}, False),
    ("courtesy", "{keywords: {any: [gracias, thanks], none: ['?', pero]}, word_count: {max: 6}}",
     {"text": "Muchas gracias por todo!"}, True),
    ("courtesy-too-long", "{keywords: [gracias], word_count: {max: 6}}",
     {"text": "Gracias, el pedido 4411 llegó roto otra vez"}, False),
    # several keys mean AND; all / any / not nest
    ("and-both", "{keywords: [envío], type: text}", {"text": "envío"}, True),
    ("and-one-fails", "{keywords: [envío], customer_status: vip}", {"text": "envío"}, False),
    ("all", "{all: [{keywords: [envío]}, {customer_status: lead}]}", {"text": "envío"}, True),
    ("any", "{any: [{keywords: [roto]}, {type: image}]}", {"type": MessageType.image}, True),
    ("any-none", "{any: [{keywords: [roto]}, {type: image}]}", {"text": "hola"}, False),
    ("not", "{not: {customer_status: vip}}", {"text": "hola"}, True),
    ("not-blocks", "{not: {keywords: [hola]}}", {"text": "hola"}, False),
    ("nested", "{any: [{all: [{keywords: [envío]}, {not: {keywords: [roto]}}]}, {type: audio}]}",
     {"text": "envío intacto"}, True),
]


@pytest.mark.parametrize(("when", "facts", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_condition(when: str, facts: dict, expected: bool) -> None:
    config = config_with(f"- {{name: r, when: {when}, then: {{category: sales}}}}")
    decision = decide(config, **{"text": "", **facts})
    assert bool(decision.matched) is expected
    if expected:
        assert decision.matched[0].name == "r"
        assert decision.category == "sales"


REASONS = [
    ("{keywords: [envío]}", {"text": "mi envio"}, "keyword 'envío' found"),
    ("{customer_status: vip}", {"status": "vip"}, "customer status vip"),
    ("{type: image}", {"type": MessageType.image}, "message type image"),
    ("{history: {first_contact: true}}", {}, "first contact"),
    ("{business_hours: inside}", {}, "inside business hours"),
    ("{campaign: {button_payload: promo_}}", {"button_payload": "promo_x"},
     "button payload 'promo_x'"),
    ("{not: {customer_status: vip}}", {}, "not {'customer_status': ('vip',)}"),
    ("{word_count: {max: 6}}", {"text": "gracias 👍"}, "1 word (at most 6)"),
    ("{flow: {name: csat, fields: {rating: 1}}}",
     {"flow_name": "csat", "flow_fields": {"rating": "1"}}, "flow field rating = '1'"),
]


@pytest.mark.parametrize(("when", "facts", "reason"), REASONS)
def test_reasons_are_human_readable(when: str, facts: dict, reason: str) -> None:
    config = config_with(f"- {{name: r, when: {when}, then: {{category: sales}}}}")
    decision = decide(config, **{"text": "", **facts})
    assert reason in decision.matched[0].reasons

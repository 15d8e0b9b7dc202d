"""Actions, rule order, `continue`, ignore, defaults, and the keyword index."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rules import ContactFacts, HistoryFacts, MessageFacts, Priority, evaluate, matching
from rules.matching import MatchContext, compiled_rules
from rules.text import tokenize

from .helpers import FRIDAY_10, config_with, decide

SHIPPING = """
- name: shipping
  when: {keywords: [envío]}
  then:
    category: operations
    title: "Envío — {contact.first_name} ({contact.status})"
    priority: high
    team: logistics
    skills: [shipping]
    tags: [shipping]
    stage: new-request
    reply: {es: "Hola {contact.first_name}, #{task.number}", en: "Hi #{task.number}"}
"""


def test_actions_fill_the_decision() -> None:
    decision = decide(config_with(SHIPPING), "cambio de envío", status="customer")
    assert decision.category == "operations"
    assert decision.title == "Envío — Ana (customer)"
    assert decision.priority is Priority.high
    assert decision.sla == "high"  # defaults to the priority
    assert (decision.team, decision.skills, decision.tags) == ("logistics", ("shipping",),
                                                               ("shipping",))
    assert decision.stage == "new-request"
    assert decision.reply == {"es": "Hola {contact.first_name}, #{task.number}",
                              "en": "Hi #{task.number}"}
    assert decision.ignore is False


def test_explicit_sla_key_wins_over_priority() -> None:
    config = config_with("- {name: r, then: {priority: high, sla: vip}}")
    assert decide(config, "x").sla == "vip"


def test_first_match_wins() -> None:
    config = config_with("""
        - {name: one, when: {keywords: [hola]}, then: {category: sales}}
        - {name: two, when: {keywords: [hola]}, then: {category: support}}
    """)
    decision = decide(config, "hola")
    assert [m.name for m in decision.matched] == ["one"]
    assert decision.category == "sales"


CONTINUE = """
- {name: vip, when: {customer_status: vip}, then: {priority: high, tags: [vip], team: sales},
   continue: true}
- {name: boost, when: {keywords: [urgente]}, then: {raise_priority: true, tags: [hurry]},
   continue: true}
- {name: shipping, when: {keywords: [envío]},
   then: {category: operations, priority: low, team: logistics, tags: [shipping, vip]}}
- {name: never, then: {category: marketing}}
"""

CONTINUE_CASES = [
    # text, status, matched rules, priority, team, tags
    ("envío", "vip", ["vip", "shipping"], Priority.high, "sales", ("vip", "shipping")),
    ("envío", "lead", ["shipping"], Priority.low, "logistics", ("shipping", "vip")),
    ("envío urgente", "vip", ["vip", "boost", "shipping"], Priority.urgent, "sales",
     ("vip", "hurry", "shipping")),
    ("envío urgente", "lead", ["boost", "shipping"], Priority.normal, "logistics",
     ("hurry", "shipping", "vip")),
    ("hola", "vip", ["vip", "never"], Priority.high, "sales", ("vip",)),
]


@pytest.mark.parametrize(("text", "status", "names", "priority", "team", "tags"), CONTINUE_CASES)
def test_continue_adds_tags_raises_priority_and_fills_unset(
        text: str, status: str, names: list[str], priority: Priority, team: str,
        tags: tuple[str, ...]) -> None:
    decision = decide(config_with(CONTINUE), text, status=status)
    assert [m.name for m in decision.matched] == names
    assert decision.priority is priority  # never lowered by a later rule
    assert decision.team == team  # first one set wins
    assert decision.tags == tags


def test_raise_priority_caps_at_urgent() -> None:
    config = config_with("- {name: r, then: {priority: urgent, raise_priority: true}}")
    assert decide(config, "x").priority is Priority.urgent


def test_ignore_rule() -> None:
    config = config_with("""
        - {name: thanks, when: {regex: '^\\W*(gracias|ok|thanks)\\W*$'}, then: {ignore: true}}
        - {name: rest, then: {category: sales}}
    """)
    assert decide(config, "¡Gracias!").ignore is True
    assert decide(config, "gracias, pero no llegó").ignore is False


def test_no_rule_matched_gives_defaults() -> None:
    config = config_with("- {name: r, when: {keywords: [zzz]}, then: {category: sales}}")
    decision = decide(config, "hola qué tal")
    assert decision.matched == ()
    assert (decision.category, decision.priority, decision.team) == ("support", Priority.normal,
                                                                     None)
    assert decision.title == "hola qué tal"
    assert decision.reply == {}


def test_disabled_rules_are_skipped() -> None:
    config = config_with("- {name: r, enabled: false, then: {category: sales}}")
    assert decide(config, "x").matched == ()


def test_default_title_for_media_and_long_text() -> None:
    config = config_with()
    from rules import MessageType

    assert decide(config, "", type=MessageType.image).title == "[image]"
    assert len(decide(config, "palabra " * 40).title) == 80


def test_language_from_text_then_contact() -> None:
    config = config_with()
    english = evaluate(config, message=MessageFacts("where is my order"),
                       contact=ContactFacts("x", language="es"), history=HistoryFacts(),
                       now=FRIDAY_10)
    unsure = evaluate(config, message=MessageFacts("12345"),
                      contact=ContactFacts("x", language="es"), history=HistoryFacts(),
                      now=FRIDAY_10)
    assert (english.language, unsure.language) == ("en", "es")


def test_index_evaluates_the_same_as_a_linear_scan() -> None:
    rules = "\n".join(
        f"- {{name: r{i}, when: {{keywords: [w{i}, 'dos w{i}']}}, then: {{tags: [t{i}]}},"
        f" continue: true}}" for i in range(40))
    rules += "\n- {name: img, when: {type: image}, then: {tags: [img]}, continue: true}"
    rules += "\n- {name: any, when: {any: [{keywords: [zz]}, {regex: 'w3'}]}, then: {tags: [a]}}"
    config = config_with(rules)
    compiled = compiled_rules(config)
    for text in ["w1 w3", "dos w7 w39", "nada", "w3", "zz w2"]:
        tokens = tokenize(text)
        ctx = MatchContext(config, MessageFacts(text), ContactFacts(), HistoryFacts(),
                           FRIDAY_10, None, tokens)
        linear = [c.rule.name for c in compiled.rules if c.test(ctx) is not None]
        indexed = [m.name for m in decide(config, text).matched]
        assert indexed == linear[: len(indexed)]
        assert set(indexed) == set(linear)


def test_index_only_tests_rules_that_can_match() -> None:
    rules = "\n".join(f"- {{name: r{i}, when: {{keywords: [w{i}]}}, then: {{}}}}"
                      for i in range(100))
    compiled = compiled_rules(config_with(rules + "\n- {name: fallback, then: {}}"))
    candidates = compiled.candidates(frozenset(tokenize("w7 w42")))
    assert [c.rule.name for c in candidates] == ["r7", "r42", "fallback"]


def test_rules_are_compiled_once_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_with(SHIPPING)

    def refuse(config: object) -> None:
        raise AssertionError("compiled after load")

    monkeypatch.setattr(matching, "compile_rules", refuse)
    assert decide(config, "cambio de envío").matched[0].name == "shipping"
    assert compiled_rules(config) is compiled_rules(config)


def test_the_same_file_loads_to_equal_configs() -> None:
    assert config_with(SHIPPING) == config_with(SHIPPING)
    assert config_with(SHIPPING) != config_with()


def test_reopen_window_and_defaults() -> None:
    config = config_with()
    assert config.reopen_within == timedelta(days=7)
    assert config.default_language == "es"
    assert config.minutes_saved_per_task == 5

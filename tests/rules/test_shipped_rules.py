"""The shipped rules.yaml: it loads, and the brief's cases come out as described."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from rules import (
    HistoryFacts,
    MessageType,
    Priority,
    RulesConfig,
    compute_deadlines,
    due_times,
    load_rules,
    render_template,
    route,
)
from rules.eta import describe_due

from .helpers import decide, madrid

SHIPPED = Path(__file__).resolve().parents[2] / "rules.yaml"
WEDNESDAY_10 = madrid(2026, 3, 4, 10)


@pytest.fixture(scope="module")
def config() -> RulesConfig:
    return load_rules(SHIPPED)


def test_loads_with_teams_agents_and_templates(config: RulesConfig) -> None:
    assert config.timezone == "Europe/Madrid"
    assert set(config.teams) == {"sales", "support", "logistics", "marketing"}
    assert 6 <= len(config.agents) <= 8
    assert all(config.agent(team.supervisor) for team in config.teams.values())
    assert {lang for a in config.agents for lang in a.languages} == {"es", "en"}
    assert any(a.preferred_channel == "telegram" for a in config.agents)
    assert set(config.closing_reply) == {"es", "en"}
    assert config.out_of_window_template.name == "opsbot_task_update"
    assert config.out_of_window_template.language == "es"
    assert config.rules[-1].name == "fallback"


CASES = [
    # id, text, extra message facts, rule, category, team, skill, sla key
    ("availability-es", "Hola, ¿tenéis disponible la chaqueta azul en talla M?", {},
     "product-availability", "sales", "sales", "products", "sales_follow_up"),
    ("availability-en", "Hi, is the blue jacket available in size M?", {},
     "product-availability", "sales", "sales", "products", "sales_follow_up"),
    ("fault-es", "La impresora no funciona, da un error al encender", {},
     "fault-report", "support", "support", "hardware", "fault"),
    ("fault-en", "My printer is broken and shows an error", {},
     "fault-report", "support", "support", "hardware", "fault"),
    ("shipping-es", "Quiero cambiar la dirección de entrega de mi pedido", {},
     "shipping-change", "operations", "logistics", "shipping", "normal"),
    ("shipping-en", "Can I change the delivery address of my order?", {},
     "shipping-change", "operations", "logistics", "shipping", "normal"),
    ("campaign-ad-es", "Hola, quiero más información", {"referral": "Rebajas de primavera"},
     "campaign-reply", "marketing", "marketing", "campaigns", "normal"),
    ("campaign-button-en", "Yes, tell me more", {"button_payload": "promo_spring_yes",
                                                 "type": MessageType.button},
     "campaign-reply", "marketing", "marketing", "campaigns", "normal"),
]


@pytest.mark.parametrize(("text", "facts", "rule", "category", "team", "skill", "sla"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_brief_cases(config: RulesConfig, text: str, facts: dict, rule: str, category: str,
                     team: str, skill: str, sla: str) -> None:
    decision = decide(config, text, now=WEDNESDAY_10, **facts)
    assert [m.name for m in decision.matched] == [rule]
    assert (decision.category, decision.team, decision.sla) == (category, team, sla)
    assert skill in decision.skills
    assert decision.ignore is False
    routing = route(config, team=decision.team, skills=decision.skills,
                    language=decision.language, agents={}, now=WEDNESDAY_10)
    assert routing.agent_id is not None, routing.summary
    assert skill in config.agent(routing.agent_id).skills


def test_sales_follow_up_due_in_24_business_hours(config: RulesConfig) -> None:
    decision = decide(config, "¿Hay stock de la chaqueta?", now=WEDNESDAY_10)
    deadlines = compute_deadlines(config, priority=decision.priority, sla=decision.sla,
                                  start=WEDNESDAY_10)
    assert config.policy(decision.sla).resolution == timedelta(hours=24)
    # Wed 10-18 (8 h), Thu 9-18 (9 h), Fri 9-16 (7 h).
    assert deadlines.resolution_due == madrid(2026, 3, 6, 16)


def test_fault_resolution_sla_is_two_business_hours(config: RulesConfig) -> None:
    decision = decide(config, "no funciona", now=madrid(2026, 3, 6, 17, 30))
    deadlines = compute_deadlines(config, priority=decision.priority, sla=decision.sla,
                                  start=madrid(2026, 3, 6, 17, 30))
    # Friday 17:30-18:00, then Saturday opens 10:00-14:00.
    assert deadlines.resolution_due == madrid(2026, 3, 7, 11, 30)


@pytest.mark.parametrize(("text", "rule", "priority", "tags"), [
    ("Mi envío no ha llegado", "shipping-change", Priority.high, ("vip", "shipping")),
    ("The screen is broken", "fault-report", Priority.urgent, ("vip", "fault")),
    ("Buenas tardes", "fallback", Priority.high, ("vip", "general")),
])
def test_vip_raises_priority_and_tags(config: RulesConfig, text: str, rule: str,
                                      priority: Priority, tags: tuple[str, ...]) -> None:
    decision = decide(config, text, status="vip", now=WEDNESDAY_10)
    assert [m.name for m in decision.matched] == ["vip", rule]
    assert decision.priority is priority
    assert decision.tags == tags


@pytest.mark.parametrize(("text", "kind"), [
    ("gracias", MessageType.text), ("¡Muchas gracias!", MessageType.text),
    ("ok", MessageType.text), ("Thanks!", MessageType.text), ("thank you", MessageType.text),
    ("👍", MessageType.text), ("🙏🙏", MessageType.text), ("❤️", MessageType.reaction),
])
def test_acknowledgements_are_ignored(config: RulesConfig, text: str, kind: MessageType) -> None:
    decision = decide(config, text, type=kind, status="vip",
                      history=HistoryFacts(task_count=1, open_task=True))
    assert decision.ignore is True
    assert [m.name for m in decision.matched] == ["thanks-and-ok"]


@pytest.mark.parametrize("text", ["gracias, pero el pedido no llegó", "ok, my order is broken"])
def test_acknowledgement_with_content_is_not_ignored(config: RulesConfig, text: str) -> None:
    assert decide(config, text).ignore is False


@pytest.mark.parametrize(("text", "language", "greeting"), [
    ("Hola, una consulta", "es", "Hola Ana, hemos recibido tu mensaje (#12). Te respondemos "
                                 "hoy antes de las 14:00."),
    ("Hello, a question", "en", "Hi Ana, we got your message (#12). We will reply today by "
                                "2:00\u202fPM."),
])
def test_fallback_replies_in_both_languages(config: RulesConfig, text: str, language: str,
                                            greeting: str) -> None:
    decision = decide(config, text, now=WEDNESDAY_10)
    assert [m.name for m in decision.matched] == ["fallback"]
    assert (decision.category, decision.team, decision.language) == ("support", "support",
                                                                     language)
    # The acknowledgement promises the real deadline (4 business hours: 14:00), not "4 h".
    first_due, _ = due_times(config, priority=decision.priority, start=WEDNESDAY_10,
                             sla=decision.sla)
    eta = describe_due(first_due, now=WEDNESDAY_10, calendar=config.calendar, language=language)
    values = {"contact": {"name": "Ana Pérez"}, "task": {"number": 12},
              "sla": {"first_response_eta": eta}}
    assert render_template(decision.reply[language], values) == greeting


def test_every_rule_replies_in_es_and_en(config: RulesConfig) -> None:
    for rule in config.rules:
        if not rule.then.ignore and rule.then.reply:
            assert set(rule.then.reply) == {"es", "en"}, rule.name
            assert all("#{task.number}" in text and "{sla.first_response_eta}" in text
                       for text in rule.then.reply.values()), rule.name

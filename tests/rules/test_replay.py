"""rules.replay: one recorded decision replayed under a candidate (outcome, deadlines and
routing at the recorded instant), which erased decisions cannot be replayed, the summary and
the --fail-if thresholds. Pure: recorded decisions are built here."""

from dataclasses import replace
from datetime import timedelta

import pytest

from rules import ContactFacts, HistoryFacts, MessageFacts
from rules.conditions import Condition
from rules.recording import record_agents, record_facts
from rules.replay import (
    RecordedDecision,
    Replayed,
    ReplaySummary,
    changed_fields,
    move_stats,
    parse_threshold,
    reads_text,
    replay_decision,
)
from rules.routing import AgentState
from tests.rules.helpers import FRIDAY_10, config_with

RULES = """
- name: thanks
  when: {keywords: [gracias], word_count: {max: 4}}
  then: {ignore: true}
- name: vip
  when: {customer_status: vip}
  then: {tags: [vip]}
  continue: true
- name: shipping
  when: {keywords: [pedido, envío]}
  then: {category: operations, team: logistics, skills: [shipping], tags: [shipping]}
- name: fallback
  then: {team: support}
"""
BASE = config_with(RULES)
AGENTS = {"ana": AgentState("ana", open_tasks=3), "bob": AgentState("bob", open_tasks=1),
          "marta": AgentState("marta", open_tasks=0)}


def recorded(text: str | None, *, status: str = "lead", effect: str = "created",
             last_agent: str | None = None, config=BASE, **message) -> RecordedDecision:
    """A decision as opsbot records it under `config` (None text: the customer was erased)."""
    facts = record_facts(MessageFacts(text or "", **message), ContactFacts(status=status),
                         HistoryFacts(), language="es")
    draft = RecordedDecision(id=1, at=FRIDAY_10, effect=effect, facts=facts, outcome={},
                             agents=record_agents(AGENTS), text=text or "", tags=[],
                             last_agent=last_agent, flow_fields=message.get("flow_fields"))
    outcome = replay_decision(config, draft).new
    erased = {"text": None, "tags": None, "flow_fields": None} if text is None else {}
    return RecordedDecision(**{**draft.__dict__, "outcome": outcome, **erased})


@pytest.mark.parametrize("text", ["Mi pedido 4411 no llegó", "Muchas gracias", "hola",
                                  "¿Cuándo llega el envío?"])
@pytest.mark.parametrize("status", ["lead", "vip"])
def test_the_recorded_rules_change_nothing(text, status):
    found = replay_decision(BASE, recorded(text, status=status))
    assert (found.changed, found.blocked_by) == ((), None)


@pytest.mark.parametrize(("before", "after", "text", "changed"), [
    ("team: logistics,", "team: logistics, priority: high,", "mi pedido", ("priority", "sla")),
    ("tags: [shipping]", "tags: [shipping, parcel]", "mi pedido", ("tags",)),
    ("[gracias]", "[gracias, hola]", "hola", ("ignore", "matched", "team", "sla", "agent")),
    ("{category: operations,", "{category: sales,", "mi pedido", ("category",)),
    ("skills: [shipping]", "skills: [returns]", "mi pedido", ("skills",)),
    ("skills: [shipping]", "skills: [products]", "mi pedido", ("skills", "agent")),
    ("name: shipping", "name: envios", "mi pedido", ("matched",)),
])
def test_a_candidate_shows_the_fields_it_changes(before, after, text, changed):
    candidate = config_with(RULES.replace(before, after, 1))
    assert replay_decision(candidate, recorded(text)).changed == changed


def test_deadlines_start_at_the_recorded_instant():
    candidate = config_with(RULES.replace("team: logistics,", "team: logistics, priority: high,"))
    found = replay_decision(candidate, recorded("mi pedido"))
    assert found.new["first_response_due"] == (FRIDAY_10 + timedelta(hours=1)).isoformat()
    assert found.new["priority"] == "high"


def test_routing_uses_the_recorded_states_and_the_previous_agent():
    # support is sticky in the helpers' BASE: the customer's previous agent keeps them
    assert recorded("hola").outcome["agent"] == "marta"  # least loaded
    assert recorded("hola", last_agent="ana").outcome["agent"] == "ana"


def test_a_task_created_late_is_routed_when_it_was_created():
    on_time = recorded("mi pedido")
    assert on_time.outcome["agent"] == "marta"  # least loaded, at work at 10:00 in Madrid
    late = replace(on_time, routed_at=FRIDAY_10 + timedelta(hours=4))  # 14:00: marta's break
    found = replay_decision(BASE, late)
    assert (found.new["agent"], found.changed) == ("ana", ("agent",))  # bob speaks no es
    assert found.new["first_response_due"] == on_time.outcome["first_response_due"]


def test_an_ignored_or_reopened_decision_is_not_routed():
    for effect in ("ignored", "reopened"):
        found = replay_decision(BASE, recorded("mi pedido", effect=effect))
        assert (found.new["agent"], found.new["first_response_due"]) == (None, None)


@pytest.mark.parametrize(("rules", "status", "blocked_by"), [
    (RULES, "lead", "thanks"),  # `thanks` (keywords) is reached first
    (RULES, "vip", "thanks"),
    ("- {name: vip-first, when: {customer_status: vip}, then: {team: sales}}\n" + RULES, "vip",
     None),  # decided by `vip` before any text test
    ("- {name: vip-first, when: {customer_status: vip}, then: {team: sales}, continue: true}\n"
     + RULES, "vip", "thanks"),  # continues into the text rules
    ("- {name: all, then: {team: support}}\n" + RULES, "lead", None),
    (RULES.replace("- name: thanks", "- name: thanks\n  enabled: false"), "lead", "shipping"),
    ("- {name: form, when: {flow: {fields: {ok: true}}}, then: {team: sales}}\n"
     "- {name: all, then: {team: support}}", "lead", "form"),
    ("- {name: form, when: {flow: {name: csat}}, then: {team: sales}}\n"
     "- {name: all, then: {team: support}}", "lead", None),
    ("- {name: short, when: {not: {word_count: {max: 2}}}, then: {team: sales}}", "lead",
     "short"),
])
def test_an_erased_decision_is_not_replayable_when_a_reached_rule_tests_the_text(
        rules, status, blocked_by):
    candidate = config_with(rules)
    found = replay_decision(candidate, recorded(None, status=status))
    assert found.blocked_by == blocked_by
    assert (found.new is None) == (blocked_by is not None)


def test_reads_text_looks_inside_all_any_and_not():
    cases = {
        "keywords": ({"keywords": ["a"]}, True), "regex": ({"regex": "a"}, True),
        "words": ({"word_count": {"max": 2}}, True),
        "flow fields": ({"flow": {"fields": {"a": True}}}, True),
        "flow name": ({"flow": {"name": "csat"}}, False),
        "type": ({"type": "image"}, False), "status": ({"customer_status": "vip"}, False),
        "language": ({"language": "es"}, False),
        "nested": ({"any": [{"type": "image"}, {"not": {"regex": "x"}}]}, True),
        "all": ({"all": [{"type": "image"}, {"history": {"open_task": True}}]}, False),
    }
    for name, (raw, expected) in cases.items():
        assert reads_text(Condition.model_validate(raw)) is expected, name


@pytest.mark.parametrize(("old", "new", "changed"), [
    ({"tags": ["a", "b"]}, {"tags": ["b", "a"]}, ()),
    ({"skills": ["x"]}, {"skills": []}, ("skills",)),
    ({"sla": "normal", "first_response_due": "2026-03-06T10:00:00+00:00"},
     {"sla": "normal", "first_response_due": "2026-03-06T11:00:00+01:00"}, ()),
    ({"sla": "normal", "resolution_due": "2026-03-06T10:00:00+00:00"},
     {"sla": "normal", "resolution_due": "2026-03-06T10:30:00+00:00"}, ("sla",)),
    ({"matched": ["a", "b"]}, {"matched": ["a"]}, ("matched",)),
    ({"agent": "ana", "team": "t"}, {"agent": None, "team": "t"}, ("agent",)),
])
def test_changed_fields(old, new, changed):
    assert changed_fields(old, new) == changed


def outcome(**values):
    base = {"matched": ["r"], "ignore": False, "category": "support", "priority": "normal",
            "tags": [], "team": "t", "skills": [], "sla": "normal", "agent": "ana",
            "first_response_due": "2026-03-06T10:00:00+00:00",
            "resolution_due": "2026-03-06T18:00:00+00:00"}
    return {**base, **values}


def replayed(old, new, blocked_by=None):
    decision = RecordedDecision(id=1, at=FRIDAY_10, effect="created", facts={}, outcome=old)
    return Replayed(decision, new, changed_fields(old, new) if new else (), blocked_by)


def test_the_summary_counts_fields_matrices_moves_and_rules():
    summary = ReplaySummary()
    summary.add(replayed(outcome(), outcome()))
    summary.add(replayed(outcome(), outcome(priority="high", matched=["r2"],
                                            first_response_due="2026-03-06T09:30:00+00:00")))
    summary.add(replayed(outcome(), outcome(team="u")))
    summary.add(replayed(outcome(), None, blocked_by="thanks"))
    found = summary.as_dict()
    assert (found["replayed"], found["changed"], found["not_replayable"]) == (4, 2, 1)
    assert {k: v for k, v in found["fields"].items() if v} == {
        "priority": 1, "matched": 1, "sla": 1, "team": 1}
    assert found["matrices"]["team"] == [{"old": "t", "new": "t", "count": 2},
                                         {"old": "t", "new": "u", "count": 1}]
    assert found["deadlines"]["first_response_due"] == {
        "moved": 1, "earlier": 1, "later": 0, "median_seconds": -1800.0,
        "max_seconds": -1800.0}
    assert found["deadlines"]["resolution_due"]["moved"] == 0
    assert found["rules"] == {"gained": {"r2": 1}, "lost": {"r": 1}}
    assert found["not_replayable_by_rule"] == {"thanks": 1}
    assert [summary.metric(name) for name in ("changed", "priority", "not_replayable")] == \
        [2, 1, 1]


def test_move_stats_keep_the_sign_of_the_largest_shift():
    assert move_stats([60.0, -600.0, 120.0]) == {
        "moved": 3, "earlier": 1, "later": 2, "median_seconds": 60.0, "max_seconds": -600.0}


@pytest.mark.parametrize(("text", "shown"), [
    ("priority>5%", "priority>5%"), (" team >= 3 ", "team>=3"), ("changed>0.5%", "changed>0.5%"),
    ("not_replayable>10", "not_replayable>10"),
])
def test_thresholds_read(text, shown):
    assert str(parse_threshold(text)) == shown


@pytest.mark.parametrize("text", ["priority", "priority<5", "speed>5", "priority>five",
                                  "priority>5%%", ""])
def test_bad_thresholds_say_what_to_write(text):
    with pytest.raises(ValueError, match="METRIC|no metric"):
        parse_threshold(text)


@pytest.mark.parametrize(("text", "exceeded"), [
    ("priority>25%", "priority: 50.0% (1 of 2), over the threshold priority>25%"),
    ("priority>50%", None), ("priority>=50%", "priority: 50.0% (1 of 2), over the threshold "
                                              "priority>=50%"),
    ("changed>0", "changed: 1, over the threshold changed>0"), ("team>0", None),
])
def test_thresholds_exceeded(text, exceeded):
    summary = ReplaySummary()
    summary.add(replayed(outcome(), outcome()))
    summary.add(replayed(outcome(), outcome(priority="high")))
    assert parse_threshold(text).exceeded(summary) == exceeded


def test_no_message_exceeds_no_share():
    assert parse_threshold("changed>0%").exceeded(ReplaySummary()) is None

"""Routing: filters, the three strategies, and an explanation for every candidate."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rules import AgentState, route

from .helpers import FRIDAY_10, config_with, madrid

EARLY, LATE = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC)


def reasons(result) -> dict[str, str]:
    return {c.agent_id: c.reason for c in result.candidates}


def test_least_loaded_explains_every_candidate() -> None:
    result = route(config_with(), team="logistics", skills=["shipping"], language=None,
                   agents={"ana": AgentState("ana", open_tasks=1),
                           "bob": AgentState("bob", open_tasks=2),
                           "marta": AgentState("marta", open_tasks=3)}, now=FRIDAY_10)
    assert result.agent_id == "ana"
    assert result.summary == "assigned to ana: least loaded"
    assert reasons(result) == {
        "ana": "chosen: least loaded (1 open of 5)",
        "bob": "skipped: at capacity (2/2)",
        "marta": "eligible, not chosen (3 open of 5)",
    }
    assert [c.chosen for c in result.candidates] == [True, False, False]


SKIP_CASES = [
    # id, agents state, skills, language, now, agent, expected reason
    ("away", {"ana": AgentState("ana", away=True)}, [], None, FRIDAY_10, "ana", "skipped: away"),
    ("hours", {}, [], None, madrid(2026, 3, 6, 17), "ana",
     "skipped: outside working hours (08:00-16:00 Europe/Madrid)"),
    ("day-off", {}, [], None, madrid(2026, 3, 7, 11), "ana",
     "skipped: outside working hours (off on sat Europe/Madrid)"),
    ("split-shift-gap", {}, [], None, madrid(2026, 3, 6, 14), "marta",
     "skipped: outside working hours (09:00-13:00, 15:00-19:00 Europe/Madrid)"),
    ("capacity", {"bob": AgentState("bob", open_tasks=2)}, [], None, FRIDAY_10, "bob",
     "skipped: at capacity (2/2)"),
    ("skill", {}, ["returns"], None, FRIDAY_10, "ana", "skipped: lacks skill returns"),
    ("language", {}, [], "en", FRIDAY_10, "marta", "skipped: does not speak en"),
]


@pytest.mark.parametrize(("states", "skills", "language", "now", "agent", "reason"),
                         [c[1:] for c in SKIP_CASES], ids=[c[0] for c in SKIP_CASES])
def test_skip_reasons(states, skills, language, now, agent, reason) -> None:
    result = route(config_with(), team="logistics", skills=skills, language=language,
                   agents=states, now=now)
    assert reasons(result)[agent] == reason


def test_excluded_agents() -> None:
    result = route(config_with(), team="logistics", skills=[], language=None, agents={},
                   now=FRIDAY_10, exclude={"ana"})
    assert reasons(result)["ana"] == (
        "skipped: excluded (already offered: declined or let the offer expire)"
    )
    assert result.agent_id == "bob"  # 0 open like marta, earlier in the file


def test_all_required_skills() -> None:
    result = route(config_with(), team="logistics", skills=["shipping", "returns"],
                   language=None, agents={}, now=FRIDAY_10)
    assert result.agent_id == "marta"


def test_least_loaded_ties_by_oldest_assignment() -> None:
    result = route(config_with(), team="logistics", skills=[], language=None,
                   agents={"ana": AgentState("ana", last_assigned_at=LATE),
                           "bob": AgentState("bob", last_assigned_at=EARLY),
                           "marta": AgentState("marta", open_tasks=1)}, now=FRIDAY_10)
    assert result.agent_id == "bob"


def test_round_robin_picks_longest_waiting() -> None:
    config = config_with()
    never = route(config, team="sales", skills=[], language=None, now=FRIDAY_10,
                  agents={"ana": AgentState("ana", last_assigned_at=EARLY)})
    assert never.agent_id == "bob"
    assert reasons(never)["bob"] == "chosen: round robin (never assigned)"
    oldest = route(config, team="sales", skills=[], language=None, now=FRIDAY_10,
                   agents={"ana": AgentState("ana", last_assigned_at=LATE, open_tasks=0),
                           "bob": AgentState("bob", last_assigned_at=EARLY, open_tasks=1)})
    assert oldest.agent_id == "bob"
    assert oldest.summary == "assigned to bob: round robin"


def test_sticky_keeps_the_previous_agent() -> None:
    result = route(config_with(), team="support", skills=[], language=None, now=FRIDAY_10,
                   agents={"marta": AgentState("marta", open_tasks=4)}, last_agent="marta")
    assert result.agent_id == "marta"
    assert reasons(result)["marta"] == "chosen: sticky (handled this customer before)"


def test_sticky_falls_back_to_least_loaded_and_says_why() -> None:
    result = route(config_with(), team="support", skills=[], language=None, now=FRIDAY_10,
                   agents={"marta": AgentState("marta", away=True),
                           "ana": AgentState("ana", open_tasks=1)}, last_agent="marta")
    assert result.agent_id == "bob"
    assert reasons(result)["bob"] == ("chosen: least loaded (0 open of 2); "
                                      "sticky fallback: marta away")
    assert result.summary == "assigned to bob: least loaded (sticky: marta away)"


def test_nobody_available_waits_for_the_team() -> None:
    result = route(config_with(), team="logistics", skills=["shipping"], language="fr",
                   agents={}, now=FRIDAY_10)
    assert result.agent_id is None
    assert result.summary == "nobody available in logistics: waiting for the team"
    assert all(c.reason.startswith("skipped:") for c in result.candidates)


def test_no_team_considers_every_agent() -> None:
    result = route(config_with(), team=None, skills=[], language=None, agents={}, now=FRIDAY_10)
    assert [c.agent_id for c in result.candidates] == ["ana", "bob", "marta"]
    assert result.team is None


def test_config_lookups() -> None:
    config = config_with()
    assert config.agent("bob").name == "Bob Smith"
    assert config.agent("nobody") is None
    assert config.agent_by_slack("U0ANA01").id == "ana"
    assert config.agent_by_telegram(222).id == "marta"
    assert config.agent_by_telegram(1) is None
    assert config.supervisor_of("logistics") == "marta"
    assert config.supervisor_of("nope") is None

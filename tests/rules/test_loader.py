"""Broken rules files: every problem reported at once, each at its exact line:col."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rules import RuleIssue, RulesError, load_rules, parse_rules

from .helpers import BASE


def issues_of(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(textwrap.dedent(text), "bad.yaml")
    assert str(caught.value) == "\n".join(str(i) for i in caught.value.issues)
    return [str(issue) for issue in caught.value.issues]


def positions(text: str) -> list[str]:
    return [":".join(issue.split(":")[1:3]) for issue in issues_of(text)]


SCHEMA_ERRORS = """\
version: 1
timezone: Europe/Madird
business_hours: {mon-fry: "09:00-18:00", holidays: [2026-12-25]}
sla:
  normal: {first_response: 15 minutes, resolution: 24h}
teams:
  logistics: {supervisor: marta, strategy: fastest}
agents:
  - {id: ana, name: Ana, teams: [logistics], skills: [shipping]}
  - {id: ana, name: Ana B, teams: [logistic], capacity: many}
rules:
  - name: r1
    when: {kewords: [envío]}
    then: {team: sales, skills: [flying], priority: hgh, reply: {es: "Hola {contact.nombre}"}}
"""


def test_every_error_at_its_node() -> None:
    found = issues_of(SCHEMA_ERRORS)
    expected = [
        ("2:11", "timezone: unknown timezone 'Europe/Madird'"),
        ("3:18", "business_hours.mon-fry: unknown day 'mon-fry'"),
        ("5:28", "sla.normal.first_response: invalid duration '15 minutes'"),
        ("7:27", "teams.logistics.supervisor: supervisor 'marta' is not an agent id"),
        ("7:44", "teams.logistics.strategy: Input should be 'least_loaded'"),
        ("10:10", "agents[1].id: agent id 'ana' is used twice (first at agents[0])"),
        ("10:36", "agents[1].teams[0]: unknown team 'logistic' (known: logistics)"),
        ("10:57", "agents[1].capacity: Input should be a valid integer"),
        ("13:12", "rules[0].when.kewords: unknown key 'kewords' (did you mean 'keywords'?)"),
        ("14:18", "rules[0].then.team: unknown team 'sales'"),
        ("14:34", "rules[0].then.skills[0]: no agent has skill 'flying'"),
        ("14:53", "rules[0].then.priority: Input should be 'low', 'normal', 'high' or 'urgent'"),
        ("14:70", "rules[0].then.reply.es: unknown placeholder {contact.nombre}"),
    ]
    assert len(found) == len(expected)
    for issue, (where, start) in zip(found, expected, strict=True):
        assert issue.startswith(f"bad.yaml:{where}: {start}"), issue


BLOCK_STYLE = """\
version: 1
timezone: Europe/Madrid
business_hours:
  mon-fri: "9-18"
  sat: "14:00-10:00"
sla:
  high:
    first_response: 1h
    resolution: 2 days
escalation:
  remind_at: [50%, 120%]
  on_breach: [notify_supervisor, panic]
teams: {}
agents: []
rules:
  - name: a
    when:
      all:
        - keywords: {any: [ok], most: [x]}
        - type: [text, gif]
      not:
        regex: "(unclosed"
    then:
      category: finance
      title: "Hola {task.number}"
      sla: gold
  - name: a
    continue: maybe
"""


def test_block_style_positions() -> None:
    found = issues_of(BLOCK_STYLE)
    assert [":".join(i.split(":")[1:3]) for i in found] == [
        "4:12", "5:8", "6:1", "9:17", "11:14", "12:34", "19:33", "20:24", "22:16",
        "24:17", "25:14", "26:12", "27:11", "28:15",
    ]
    text = "\n".join(found)
    for fragment in ["invalid hours '9-18'", "the end must be after the start",
                     "sla: define at least the `normal` policy", "invalid duration '2 days'",
                     "between 1% and 99%", "unknown key 'most'", "invalid regex",
                     "unknown placeholder {task.number}", "unknown sla policy 'gold'",
                     "rule name 'a' is used twice", "Input should be a valid boolean"]:
        assert fragment in text


def test_missing_required_keys_point_at_the_parent() -> None:
    found = issues_of("""\
        version: 1
        business_hours: {mon-fri: "09:00-18:00"}
        sla:
          normal: {first_response: 1h}
        teams:
          ops: {strategy: sticky}
        """)
    assert found == [
        "bad.yaml:1:1: missing required key 'timezone'",
        "bad.yaml:4:11: sla.normal: missing required key 'resolution'",
        "bad.yaml:6:8: teams.ops: missing required key 'supervisor'",
    ]


@pytest.mark.parametrize(("text", "where", "fragment"), [
    ("version: 1\nrules: [a, b\nteams: {}\n", "3:6", "YAML syntax"),
    ("version: 1\nversion: 2\n", "2:1", "YAML syntax: found duplicate key"),
    ("version: 1\n  bad: indent\n", "2:6", "YAML syntax"),
    ("- just\n- a list\n", "1:1", "the file must be a mapping"),
])
def test_yaml_syntax_errors(text: str, where: str, fragment: str) -> None:
    (issue,) = issues_of(text)
    assert issue.startswith(f"bad.yaml:{where}: {fragment}"), issue


def test_unsupported_version() -> None:
    assert positions(BASE.replace("version: 1", "version: 2")) == ["1:10"]


def test_empty_business_hours_and_preferred_channel() -> None:
    text = BASE.replace('{mon-fri: "09:00-18:00", holidays: [2026-12-25]}', "{holidays: []}")
    text = text.replace("preferred_channel: telegram", "preferred_channel: slack")
    found = issues_of(text)
    assert "business_hours: give at least one day with hours" in found[0]
    assert "preferred_channel is slack but the agent has no slack id" in found[1]


def test_rule_issue_format() -> None:
    issue = RuleIssue("rules.yaml", 3, 7, "boom")
    assert str(issue) == "rules.yaml:3:7: boom"
    assert str(RulesError([issue, issue])) == "rules.yaml:3:7: boom\nrules.yaml:3:7: boom"


def test_load_rules_reads_a_file_and_reports_its_path(tmp_path: Path) -> None:
    good = tmp_path / "ok.yaml"
    good.write_text(BASE, encoding="utf-8")
    assert load_rules(good).timezone == "Europe/Madrid"
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("capacity: 2", "capacity: 0"), encoding="utf-8")
    with pytest.raises(RulesError) as caught:
        load_rules(bad)
    assert str(caught.value).startswith(f"{bad}:19:49: agents[1].capacity: Input should be")
    with pytest.raises(RulesError, match="cannot read the file"):
        load_rules(tmp_path / "missing.yaml")


def test_durations_are_parsed() -> None:
    config = parse_rules(BASE.replace("unaccepted_after: 10m", "unaccepted_after: 1h30m"))
    assert config.escalation.unaccepted_after.total_seconds() == 5400
    assert config.escalation.remind_at == (50, 80)

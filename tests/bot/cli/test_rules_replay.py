"""`opsbot rules replay` on traffic recorded by the real conversation use case: a candidate
that raises one rule's priority and renames a team shows exactly those changes, an identical
one none; --fail-if thresholds exit 1; bad options and broken candidates exit 2 with one
line each; an erased customer is not replayable where a reached rule needs their text."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from bot.cli import app
from bot.usecases.conversation import apply_message
from bot.whatsapp.parsing import InboundMessage
from rules import parse_rules
from store.contacts import upsert_contact
from store.gdpr import erase_contact
from store.models import RuleDecision, Task

runner = CliRunner()
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
PERIOD = ["--from", "2026-11-23T00:00Z", "--to", "2026-11-25T00:00Z"]
RULES = """\
version: 1
timezone: UTC
default_language: es
business_hours: {mon-sun: "00:00-24:00"}
sla:
  normal: {first_response: 1h, resolution: 8h, business_hours: false}
  high: {first_response: 30m, resolution: 4h, business_hours: false}
teams:
  logistics: {supervisor: sam}
  support: {supervisor: sam}
agents:
  - {id: ana, name: Ana, teams: [logistics], slack: U0ANA, capacity: 50}
  - {id: bob, name: Bob, teams: [support], slack: U0BOB, capacity: 50}
  - {id: sam, name: Sam, slack: U0SAM}
rules:
  - name: thanks
    when: {keywords: [gracias], word_count: {max: 4}}
    then: {ignore: true}
  - name: shipping
    when: {keywords: [pedido, envío]}
    then: {category: operations, team: logistics}
  - name: vip
    when: {customer_status: vip}
    then: {team: support, tags: [vip]}
  - name: fallback
    then: {team: support}
"""
# Raises `shipping` to high and renames the team `support` to `helpdesk`.
CANDIDATE = (RULES.replace("  support: {supervisor: sam}", "  helpdesk: {supervisor: sam}")
             .replace("teams: [support]", "teams: [helpdesk]")
             .replace("team: support", "team: helpdesk")
             .replace("team: logistics}", "team: logistics, priority: high}"))
# The same rules with `vip` first: a VIP's message is decided before any text is tested.
VIP_FIRST = RULES.replace("""  - name: vip
    when: {customer_status: vip}
    then: {team: support, tags: [vip]}
""", "").replace("rules:\n", """rules:
  - name: vip
    when: {customer_status: vip}
    then: {team: support, tags: [vip]}
""")
# (customer, CRM status, text, minutes after NOW)
TRAFFIC = [
    ("34600000001", None, "Mi pedido 4411 no ha llegado", 0),
    ("34600000002", None, "¿Dónde está el envío de mi pedido?", 10),
    ("34600000003", None, "Hola, tengo una consulta sobre mi factura", 20),
    ("34600000004", "vip", "Necesito hablar con alguien hoy", 30),
    ("34600000005", None, "Muchas gracias", 40),
]


def write(db, config, wa_id: str, text: str, at: datetime, status: str | None = None) -> str:
    with db.transaction() as session:
        if status is not None:
            contact, _ = upsert_contact(session, wa_id=wa_id, user_id=None, name="Cliente",
                                        now=at)
            contact.crm_status = status
    message = InboundMessage(wamid=f"wamid.{wa_id}.{at:%H%M}", wa_id=wa_id, user_id=None,
                             name="Cliente", type="text", at=at, text=text)
    with db.transaction() as session:
        return apply_message(session, config=config, message=message, now=at)


def record_traffic(db) -> None:
    """TRAFFIC applied through the conversation use case under RULES."""
    config = parse_rules(RULES)
    outcomes = [write(db, config, wa_id, text, NOW + timedelta(minutes=minutes), status)
                for wa_id, status, text, minutes in TRAFFIC]
    assert outcomes == ["created"] * 4 + ["recorded"]


@pytest.fixture
def recorded(db, database_url, monkeypatch, tmp_path):
    record_traffic(db)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("RULES_PATH", str(tmp_path / "rules.yaml"))
    return tmp_path


def candidate(folder, text: str) -> str:
    path = folder / "candidate.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def replay_json(folder, text: str, *options: str) -> dict:
    result = runner.invoke(app, ["rules", "replay", candidate(folder, text), *PERIOD, "--json",
                                 *options])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    return {**found["summary"], "rows": found["changed"], "blocked": found["not_replayable"]}


def test_an_identical_candidate_changes_nothing(recorded):
    found = replay_json(recorded, RULES)
    assert (found["replayed"], found["changed"], found["not_replayable"]) == (5, 0, 0)
    assert found["rows"] == [] and found["fields"] == dict.fromkeys(found["fields"], 0)
    assert found["rules"] == {"gained": {}, "lost": {}}
    assert found["deadlines"]["first_response_due"]["moved"] == 0


def test_a_raised_priority_and_a_renamed_team_show_exactly_those_changes(recorded):
    found = replay_json(recorded, CANDIDATE)
    assert (found["replayed"], found["changed"]) == (5, 4)
    assert found["fields"] == {"ignore": 0, "matched": 0, "category": 0, "priority": 2,
                               "tags": 0, "team": 2, "skills": 0, "sla": 2, "agent": 0}
    priority = {(p["old"], p["new"]): p["count"] for p in found["matrices"]["priority"]}
    assert priority == {("normal", "high"): 2, ("normal", "normal"): 3}
    team = {(p["old"], p["new"]): p["count"] for p in found["matrices"]["team"]}
    assert team == {("logistics", "logistics"): 2, ("support", "helpdesk"): 2, (None, None): 1}
    moves = found["deadlines"]
    assert moves["first_response_due"] == {"moved": 2, "earlier": 2, "later": 0,
                                           "median_seconds": -1800.0, "max_seconds": -1800.0}
    assert moves["resolution_due"]["median_seconds"] == -4 * 3600.0
    rows = {row["snippet"]: row for row in found["rows"]}
    assert rows["Mi pedido #### no ha llegado"]["changed"] == ["priority", "sla"]
    assert rows["Necesito hablar con alguien hoy"]["changed"] == ["team"]
    assert rows["Necesito hablar con alguien hoy"]["new"]["team"] == "helpdesk"
    assert all(row["customer"].startswith("C-") and row["task"].startswith("T-")
               for row in found["rows"])


def test_replay_changes_nothing_in_the_database(recorded, db):
    def counts():
        with db.transaction(readonly=True) as session:
            return (session.scalar(select(func.count(RuleDecision.id))),
                    session.scalars(select(Task.priority).order_by(Task.id)).all())

    before = counts()
    replay_json(recorded, CANDIDATE)
    assert counts() == before


def test_text_output_gives_the_summary_then_the_changed_messages(recorded):
    result = runner.invoke(app, ["rules", "replay", candidate(recorded, CANDIDATE), *PERIOD])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "Messages replayed: 5; would change: 4 (80.0%); not replayable: 0" in lines
    assert "Priority: normal → high: 2" in lines
    assert "Team: support → helpdesk: 2" in lines
    assert "Rules that gain matches: none" in lines and "Rules that lose matches: none" in lines
    assert "Changed messages (4):" in lines
    assert "      priority: normal → high" in lines
    assert not any("34600000001" in line or "4411" in line for line in lines)


def test_csv_has_one_row_per_changed_message(recorded):
    result = runner.invoke(app, ["rules", "replay", candidate(recorded, CANDIDATE), *PERIOD,
                                 "--csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 4
    assert {(row["old_team"], row["new_team"]) for row in rows} == {
        ("logistics", "logistics"), ("support", "helpdesk")}


@pytest.mark.parametrize(("thresholds", "code", "said"), [
    (["priority>40%"], 0, None),
    (["priority>=40%"], 1, "--fail-if priority: 40.0% (2 of 5), over the threshold priority>=40%"),
    (["team>1", "agent>0"], 1, "--fail-if team: 2, over the threshold team>1"),
    (["changed>4"], 0, None),
    (["not_replayable>0"], 0, None),
])
def test_fail_if_exits_1_when_a_threshold_is_exceeded(recorded, thresholds, code, said):
    options = [part for text in thresholds for part in ("--fail-if", text)]
    result = runner.invoke(app, ["rules", "replay", candidate(recorded, CANDIDATE), *PERIOD,
                                 "--json", *options])
    assert result.exit_code == code, result.output
    json.loads(result.stdout)  # the replay is printed either way
    if said:
        assert result.stderr.strip() == f"opsbot: {said}"


@pytest.mark.parametrize(("options", "said"), [
    (["--fail-if", "priority>>5"], "is not a threshold"),
    (["--fail-if", "speed>5%"], "no metric 'speed'"),
    (["--since", "7d", "--from", "2026-11-01"], "give --since, or --from and --to, not both"),
    (["--since", "a week"], "'a week' is not a duration: write 7d"),
    (["--from", "yesterday"], "is not ISO 8601"),
    (["--json", "--csv"], "give --json or --csv, not both"),
])
def test_bad_options_exit_2_with_one_line(recorded, options, said):
    result = runner.invoke(app, ["rules", "replay", candidate(recorded, RULES), *options])
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("opsbot: ") and said in line


def test_a_broken_candidate_exits_2_with_file_line_col(recorded):
    path = candidate(recorded, RULES.replace("then: {ignore: true}", "then: {ignroe: true}"))
    result = runner.invoke(app, ["rules", "replay", path, *PERIOD])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{path}:") and "ignroe" in result.stderr
    assert "Traceback" not in result.output


def test_a_missing_database_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = runner.invoke(app, ["rules", "replay", candidate(tmp_path, RULES)])
    assert result.exit_code == 2
    assert result.stderr.startswith("opsbot: no database at")


def erase(db, wa_id: str) -> None:
    with db.transaction() as session:
        erase_contact(session, wa_id=wa_id, actor="admin", reason="asked to", now=NOW)


def test_an_erased_customer_is_not_replayable_where_a_reached_rule_needs_the_text(recorded, db):
    erase(db, "34600000003")  # a lead: `thanks` (keywords) is reached before `fallback`
    erase(db, "34600000004")  # a VIP
    found = replay_json(recorded, RULES)
    assert (found["replayed"], found["changed"], found["not_replayable"]) == (5, 0, 2)
    assert found["not_replayable_by_rule"] == {"thanks": 2}
    assert {row["snippet"] for row in found["blocked"]} == {"[erased]"}
    vip_first = replay_json(recorded, VIP_FIRST)  # the VIP is decided before any text test
    assert (vip_first["not_replayable"], vip_first["changed"]) == (1, 0)
    [blocked] = vip_first["blocked"]
    assert blocked["blocked_by"] == "thanks" and blocked["customer"] != "C-4"


def test_parts_replayed_in_processes_add_up_to_the_whole(recorded, monkeypatch):
    alone = replay_json(recorded, CANDIDATE, "--workers", "1")
    monkeypatch.setattr("bot.usecases.replay.PART_SMALLEST", 2)  # 5 decisions: two parts
    assert replay_json(recorded, CANDIDATE, "--workers", "3") == alone

"""`rules check` and `rules test`, mounted the way the main CLI mounts them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bot.cli.rules import rules_app
from tests.rules.helpers import BASE

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = str(ROOT / "rules.yaml")


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(rules_app, name="rules")

    @app.callback()
    def main() -> None:
        """opsbot"""

    return app


def test_check_ok(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["rules", "check", SHIPPED])
    assert result.exit_code == 0
    assert result.stdout.startswith(f"OK {SHIPPED}: 7 rules, 4 teams, 7 agents")


def test_check_reads_rules_path_env(cli: typer.Typer, tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(BASE, encoding="utf-8")
    result = CliRunner().invoke(cli, ["rules", "check"], env={"RULES_PATH": str(path)})
    assert result.exit_code == 0, result.output
    assert str(path) in result.stdout


def test_check_broken_file_exits_2_with_every_issue(cli: typer.Typer, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BASE.replace("least_loaded", "fastest").replace("15m", "15 minutes"),
                    encoding="utf-8")
    result = CliRunner().invoke(cli, ["rules", "check", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}:5:28: sla.urgent.first_response: invalid duration")
    assert lines[1].startswith(f"{path}:11:44: teams.logistics.strategy: Input should be")


def test_test_command_text(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, [
        "rules", "test", "--rules", SHIPPED, "--text", "Quiero cambiar la dirección de envío",
        "--status", "vip", "--at", "2026-03-06T17:30:00+01:00"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "- vip: customer status vip" in out
    assert "- shipping-change: keyword 'envío' found" in out
    assert "category  operations" in out and "priority  high" in out
    assert "tags      vip, shipping" in out
    assert "first response 1 h -> Sat 2026-03-07 10:30 CET" in out
    assert "routing   assigned to marta: least loaded (sticky: no previous agent)" in out
    assert "ana        skipped: outside working hours (08:00-16:00 Europe/Madrid)" in out


def test_test_command_json(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, [
        "rules", "test", "--rules", SHIPPED, "--text", "my laptop is broken", "--json",
        "--at", "2026-03-04T10:00:00Z", "--from", "+34600000000"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [m["name"] for m in data["matched"]] == ["fault-report"]
    assert (data["category"], data["priority"], data["sla"], data["team"]) == (
        "support", "high", "fault", "support")
    assert data["deadlines"]["resolution_due"] == "2026-03-04T12:00:00+00:00"
    assert data["routing"]["agent_id"] == "javier"
    assert {c["agent_id"]: c["reason"] for c in data["routing"]["candidates"]}["elena"] == (
        "skipped: lacks skill hardware")
    assert data["language"] == "en" and "#N" in data["reply"]


def test_test_command_rejects_bad_instant(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["rules", "test", "--rules", SHIPPED, "--text", "x",
                                      "--at", "yesterday"])
    assert result.exit_code == 2

import json
from datetime import UTC, datetime

import pytest
import typer
from typer.testing import CliRunner

from bot.cli import app
from bot.cli import report as cli_report
from bot.cli.report import format_seconds, parse_since
from store.db import Database
from tests.store.test_reports import NOW, build_history
from tests.store.test_satisfaction import build_surveys

runner = CliRunner()

MINIMAL_RULES = """\
version: 1
timezone: UTC
business_hours: {mon-fri: "09:00-18:00"}
sla:
  normal: {first_response: 4h, resolution: 24h}
minutes_saved_per_task: 12
"""


def constructed(monkeypatch, database_url, tmp_path, build) -> str:
    """The database with what `build` writes, the clock at tests/store/test_reports.py's NOW."""
    database = Database(database_url)
    with database.transaction() as session:
        build(session)
    database.dispose()
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("RULES_PATH", str(tmp_path / "absent.yaml"))
    monkeypatch.setattr(cli_report, "utcnow", lambda: NOW)
    return database_url


@pytest.fixture
def history(monkeypatch, database_url, tmp_path) -> str:
    """The constructed history of tests/store/test_reports.py."""
    return constructed(monkeypatch, database_url, tmp_path, build_history)


@pytest.fixture
def surveys(monkeypatch, database_url, tmp_path) -> str:
    """The surveys of tests/store/test_satisfaction.py."""
    return constructed(monkeypatch, database_url, tmp_path, build_surveys)


def test_json_report(history):
    result = runner.invoke(app, ["report", "--since", "2026-11-17", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["window"] == {"since": "2026-11-17T00:00:00+00:00", "until": NOW.isoformat()}
    assert data["created"] == {
        "total": 8,
        "by_category": {"operations": 3, "support": 3, "sales": 2},
        "by_channel": {"whatsapp": 7, "web": 1},
    }
    assert data["resolution"] == {"count": 4, "mean_seconds": 29325.0, "median_seconds": 21600.0}
    assert data["sla"]["overall"]["share"] == 0.5  # T-6: accepted, never answered, breached
    assert data["sla"]["by_agent"]["dan"] == {
        "within": 0, "breached": 2, "pending": 0, "no_sla": 0, "share": 0.0,
    }  # fmt: skip
    assert data["first_response"] == {"count": 4, "mean_seconds": 1650.0, "median_seconds": 1350.0}
    assert data["accept"] == {"count": 6, "mean_seconds": 1100.0, "median_seconds": 900.0}
    assert data["alerts"]["offers_expired"] == 1
    assert data["backlog"]["now"] == 5
    assert [day["open"] for day in data["backlog"]["by_day"]] == [2, 3, 4, 5]
    assert data["agents"]["bea"] == {"assigned": 2, "accepted": 1, "closed": 2}
    assert data["automation"] == {  # no rules file: 5 minutes per task
        "automated": 5, "created": 8, "share": 0.625, "minutes_per_task": 5.0,
        "hours_saved": 25 / 60,
    }  # fmt: skip
    assert (data["satisfaction"]["mean"], data["satisfaction"]["csat"]) == (3.4, 0.6)
    assert data["surveys"]["overall"]["sent"] == 0


def test_human_report(history):
    result = runner.invoke(app, ["report", "--since", "3d", "--minutes-per-task", "12"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "opsbot report: 2026-11-17 12:00 to 2026-11-20 12:00 UTC" in text
    lines = text.splitlines()
    # From the 17th 12:00 on (T-3 left out): first replies 3000 1200 900 s, mean 1700 s,
    # median 1200 s; first accepts 2400 1800 1200 300 300 s, mean = median = 1200 s.
    first = ["first", "response", "3", "28", "min", "20", "s", "20", "min"]
    assert _line(lines, "first response").split() == first
    accept = ["time", "to", "accept", "5", "20", "min", "20", "min"]
    assert _line(lines, "time to accept").split() == accept
    assert "the automatic acknowledgement does not count, nor does accepting" in text
    # Within T-9, T-10; breached T-4, T-5, T-6 (never answered); pending T-8; no SLA T-7.
    assert _line(lines, "overall").split() == ["overall", "40.0", "%", "2", "3", "1", "1"]
    assert _line(lines, "Manual hours saved").split()[:5] == [
        "Manual",
        "hours",
        "saved",
        "0.80",
        "h",
    ]
    # T-3's (rated in the window) 5, 2, 4, 5: three of 4 or more
    assert "Satisfaction  4.00 / 5  4 ratings, CSAT 75.0 % (1: 0" in text
    assert "Surveys: none sent in this window" in text
    assert "2026-11-20  5" in _line(lines, "2026-11-20")


def _line(lines: list[str], start: str) -> str:
    return next(line.strip() for line in lines if line.strip().startswith(start))


def test_minutes_per_task_come_from_the_rules_file(history, monkeypatch, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(MINIMAL_RULES)
    monkeypatch.setenv("RULES_PATH", str(rules))
    data = json.loads(runner.invoke(app, ["report", "--since", "7d", "--json"]).stdout)
    automation = data["automation"]  # 7 days back T-1 and T-2 count too: 7 automated
    assert (automation["automated"], automation["minutes_per_task"]) == (7, 12)
    assert automation["hours_saved"] == 7 * 12 / 60


def test_an_invalid_rules_file_is_refused(history, monkeypatch, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 2\n")
    monkeypatch.setenv("RULES_PATH", str(rules))
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 2
    assert "--minutes-per-task" in result.output and str(rules) in result.output


def test_no_ratings_yet(monkeypatch, database_url, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("RULES_PATH", str(tmp_path / "absent.yaml"))
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    assert "Satisfaction: no ratings yet" in result.stdout
    assert "Surveys: none sent in this window" in result.stdout
    assert "Tasks per agent: none in this window" in result.stdout


def test_survey_figures_as_json(surveys):
    result = runner.invoke(app, ["report", "--since", "2026-11-17", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)["surveys"]
    # tests/store/test_satisfaction.py: S1-S6 sent in the window, S1 S2 S4 S6 answered by
    # NOW, S1 S4 S6 good.
    assert found["overall"] == {"name": "all", "sent": 6, "answered": 4, "good": 3,
                                "response_rate": 4 / 6, "csat": 0.75}
    assert found["by_agent"][1] == {"name": "ana", "sent": 3, "answered": 2, "good": 1,
                                    "response_rate": 2 / 3, "csat": 0.5}
    assert [(c["name"], c["csat"]) for c in found["by_category"]] == [
        ("operations", 1.0), ("sales", None), ("support", 2 / 3)]


def test_survey_figures_as_text(surveys):
    result = runner.invoke(app, ["report", "--since", "2026-11-17"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.split("\nSurveys ")[1].splitlines()  # the section's lines
    assert lines[0].split() == ["sent", "answered", "response", "rate", "CSAT"]
    assert _line(lines, "overall").split() == ["overall", "6", "4", "66.7", "%", "75.0", "%"]
    assert _line(lines, "agent ana").split() == ["agent", "ana", "3", "2", "66.7", "%", "50.0",
                                                 "%"]
    assert _line(lines, "team (no team)").split()[-6:] == ["1", "1", "100.0", "%", "100.0", "%"]
    assert _line(lines, "category sales").split() == ["category", "sales", "1", "0", "0.0", "%",
                                                      "-"]
    assert "answered by its end / sent" in result.stdout


@pytest.mark.parametrize("value", ["7x", "yesterday", "0d", "2030-01-01", "-3d"])
def test_a_bad_since_exits_2_with_what_to_write(monkeypatch, value):
    monkeypatch.setenv("DATABASE_URL", "sqlite:///:memory:")
    result = runner.invoke(app, ["report", "--since", value])
    assert result.exit_code == 2
    assert "--since" in result.output
    assert "7d, 24h, 30d or an ISO date" in " ".join(result.output.replace("│", " ").split())


@pytest.mark.parametrize(
    ("text", "since"),
    [
        ("7d", datetime(2026, 11, 13, 12, tzinfo=UTC)),
        ("24h", datetime(2026, 11, 19, 12, tzinfo=UTC)),
        ("30D", datetime(2026, 10, 21, 12, tzinfo=UTC)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T08:30", datetime(2026, 11, 1, 8, 30, tzinfo=UTC)),
        ("2026-11-01T09:30+01:00", datetime(2026, 11, 1, 8, 30, tzinfo=UTC)),
    ],
)
def test_parse_since(text, since):
    assert parse_since(text, now=NOW) == since


def test_parse_since_refuses_the_future():
    with pytest.raises(typer.BadParameter, match="not in the past"):
        parse_since("2026-11-21", now=NOW)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (0, "0 s"), (59.6, "1 min"), (7530, "2 h 5 min 30 s"), (90000, "1 d 1 h")],
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text

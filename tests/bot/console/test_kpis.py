"""The KPI page's surveys: response rate beside CSAT and a table per agent, team and category,
in the HTML itself (no JavaScript), of the viewer's teams only when not an admin."""

import re

import pytest

from bot.console import kpis as console_kpis
from tests.bot.console.kit import running_console
from tests.store.test_reports import NOW
from tests.store.test_satisfaction import build_surveys


@pytest.fixture
def console(db, redis_url, tmp_path, monkeypatch):
    monkeypatch.setattr(console_kpis, "utcnow", lambda: NOW)
    with running_console(db, redis_url, tmp_path) as console:
        yield console


def strong(page: str, element_id: str) -> str:
    return re.search(rf'<strong id="{element_id}">([^<]*)</strong>', page).group(1)


def table(page: str, by: str) -> dict[str, list[str]]:
    """The cells of each row of the surveys' table `by` (agent, team, category), by name."""
    body = re.search(rf'<table class="survey-rows" data-by="{by}">(.*?)</table>', page,
                     re.S).group(1)
    return {name: re.findall(r"<td[^>]*>([^<]*)</td>", cells)[1:]
            for name, cells in re.findall(r'<tr data-name="([^"]+)">(.*?)</tr>', body, re.S)}


def test_an_admin_sees_the_surveys_of_the_whole_business(console):
    with console.db.transaction() as session:
        build_surveys(session)
    console.sign_in("admin")
    page = console.get("/kpis?period=7d")
    assert page.status_code == 200, page.text
    # 13th 12:00 to NOW (tests/store/test_satisfaction.py): S1-S7 sent; S1 S2 S4 S6 S7
    # answered by NOW; S1 S4 S6 good.
    assert strong(page.text, "survey-response-rate") == "71.4 %"
    assert strong(page.text, "survey-csat") == "60.0 %"
    assert table(page.text, "agent") == {
        "(unassigned)": ["1", "1", "100.0 %", "100.0 %"],
        "ana": ["3", "2", "66.7 %", "50.0 %"],
        "bob": ["3", "2", "66.7 %", "50.0 %"]}
    assert table(page.text, "team")["logistics"] == ["3", "2", "66.7 %", "50.0 %"]
    assert table(page.text, "category")["sales"] == ["1", "0", "0.0 %", "—"]
    assert "answered by the period&#39;s end" in page.text


def test_a_supervisor_sees_the_surveys_of_their_team_only(console):
    with console.db.transaction() as session:
        build_surveys(session)
    console.sign_in("supervisor", agent="sofia")
    page = console.get("/kpis?period=7d&team=logistics")
    assert page.status_code == 200, page.text
    assert table(page.text, "team") == {"sales": ["3", "2", "66.7 %", "50.0 %"]}
    assert set(table(page.text, "agent")) == {"ana"}
    assert strong(page.text, "survey-response-rate") == "66.7 %"


def test_no_survey_sent(console):
    console.sign_in("admin")
    page = console.get("/kpis?period=30d")
    assert page.status_code == 200, page.text
    assert strong(page.text, "survey-response-rate") == "—"
    assert strong(page.text, "survey-csat") == "—"
    assert "No survey sent in this period." in page.text

"""The surveys' response rate and CSAT on a constructed history, worked out by hand."""

import pytest

from store.figures import NO_CATEGORY, NO_TEAM, UNASSIGNED, KpiFilters, Period
from store.kpis import compute_kpis
from store.lifecycle import SYSTEM
from store.models import Survey, SurveyStatus
from store.reports import build_report, report_as_dict
from store.satisfaction import SurveyRow, survey_figures, survey_row
from store.tasks import create_task
from tests.store.test_reports import NOW, SINCE, d

SENT, ANSWERED = SurveyStatus.SENT, SurveyStatus.ANSWERED
ALL = KpiFilters()
WINDOW = Period(SINCE, NOW)
# agent, team, category, status, sent_at, answered_at, good: one task each. The window of
# tests/store/test_reports.py runs from SINCE (17th 00:00) to NOW (20th 12:00).
SURVEYS = [
    ("ana", "sales", "support", ANSWERED, d(17, 9), d(17, 10), True),  # S1
    ("ana", "sales", "support", ANSWERED, d(18, 9), d(18, 9, 30), False),  # S2
    ("ana", "sales", "sales", SENT, d(18, 10), None, None),  # S3: never answered
    ("bob", "logistics", "support", ANSWERED, d(19, 9), d(19, 12), True),  # S4
    ("bob", "logistics", "support", ANSWERED, d(20, 11), d(20, 13), True),  # S5: answered late
    (None, None, "operations", ANSWERED, d(19, 15), d(19, 16), True),  # S6: nobody's
    ("bob", "logistics", "support", ANSWERED, d(16, 9), d(17, 8), False),  # S7: sent before
    ("ana", "sales", "support", SurveyStatus.SKIPPED, None, None, None),  # S8
    ("ana", "sales", "support", SurveyStatus.FAILED, d(18, 12), None, None),  # S9
    ("ana", "sales", "support", SurveyStatus.SCHEDULED, None, None, None),  # S10
    ("ana", "sales", "support", SENT, d(20, 13), None, None),  # S11: sent after NOW
]


def build_surveys(session) -> None:
    """SURVEYS, each on a task of its own created a day before it is due."""
    for index, (agent, team, category, status, sent, answered, good) in enumerate(SURVEYS):
        due = sent or d(20, 18)
        task = create_task(session, title="survey", category=category, priority="normal",
                           actor=SYSTEM, now=d(10, 0), team=team, assignee_id=agent)
        score = None if good is None else (5 if good else 2)
        session.add(Survey(task_id=task.id, agent_id=agent, team=team, category=category,
                           status=status, due_at=due, sent_at=sent, answered_at=answered,
                           good=good, score=score, answered_by="button" if answered else None,
                           created_at=d(10, index)))
    session.flush()


def figures(db, period=WINDOW, filters=ALL):
    with db.transaction() as session:
        build_surveys(session)
    with db.transaction(readonly=True) as session:
        return survey_figures(session, period=period, filters=filters)


def row(name, sent, answered, good) -> SurveyRow:
    return survey_row(name, sent, answered, good)


def test_figures_of_the_window(db):
    found = figures(db)
    # Sent in the window: S1-S6 (S7 before it, S8-S10 never sent, S11 after it); answered by
    # NOW: S1, S2, S4, S6 (S3 never, S5 after NOW); good: S1, S4, S6.
    assert found.overall == SurveyRow("all", 6, 4, 3, 4 / 6, 3 / 4)
    assert found.by_agent == [SurveyRow(UNASSIGNED, 1, 1, 1, 1.0, 1.0),
                              SurveyRow("ana", 3, 2, 1, 2 / 3, 0.5),
                              SurveyRow("bob", 2, 1, 1, 0.5, 1.0)]
    assert found.by_team == [row(NO_TEAM, 1, 1, 1), row("logistics", 2, 1, 1),
                             row("sales", 3, 2, 1)]
    assert found.by_category == [row("operations", 1, 1, 1),
                                 SurveyRow("sales", 1, 0, 0, 0.0, None),
                                 SurveyRow("support", 4, 3, 2, 0.75, 2 / 3)]


@pytest.mark.parametrize(("period", "overall"), [
    (Period(d(1, 0), d(2, 0)), SurveyRow("all", 0, 0, 0, None, None)),  # nothing sent
    (Period(SINCE, d(20, 14)), row("all", 7, 5, 4)),  # S11 sent, S5 answered by then
    (Period(d(16, 0), NOW), row("all", 7, 5, 3)),  # S7 sent (and answered, not good)
    (Period(d(17, 9), d(17, 9)), SurveyRow("all", 1, 0, 0, 0.0, None)),  # S1, answered later
    (Period(d(18, 11), d(18, 13)), SurveyRow("all", 0, 0, 0, None, None)),  # S9 failed
])
def test_the_cohort_is_the_surveys_sent_in_the_period(db, period, overall):
    found = figures(db, period)
    assert found.overall == overall
    if not overall.sent:
        assert found.by_agent == found.by_team == found.by_category == []


@pytest.mark.parametrize(("filters", "overall"), [
    (KpiFilters(team="sales"), row("all", 3, 2, 1)),
    (KpiFilters(agent=UNASSIGNED), row("all", 1, 1, 1)),
    (KpiFilters(agent="bob", category="support"), row("all", 2, 1, 1)),
    (KpiFilters(category="support"), row("all", 4, 3, 2)),
    (KpiFilters(team="nobody"), row("all", 0, 0, 0)),
])
def test_filters_apply_to_the_agent_team_and_category_the_survey_recorded(db, filters,
                                                                         overall):
    assert figures(db, filters=filters).overall == overall


def test_a_survey_without_a_category_is_named_so(db):
    with db.transaction() as session:
        task = create_task(session, title="t", category="support", priority="normal",
                           actor=SYSTEM, now=d(10, 0))
        session.add(Survey(task_id=task.id, status=ANSWERED, due_at=d(18, 0),
                           sent_at=d(18, 0), answered_at=d(18, 1), good=True))
    with db.transaction(readonly=True) as session:
        found = survey_figures(session, period=WINDOW, filters=ALL)
    assert found.by_category == [row(NO_CATEGORY, 1, 1, 1)]
    assert found.by_agent == [row(UNASSIGNED, 1, 1, 1)]


def test_survey_row_rates():
    assert survey_row("x", 0, 0, 0) == SurveyRow("x", 0, 0, 0, None, None)
    assert survey_row("x", 4, 0, 0) == SurveyRow("x", 4, 0, 0, 0.0, None)
    assert survey_row("x", 4, 2, 1) == SurveyRow("x", 4, 2, 1, 0.5, 0.5)


def test_the_report_carries_the_figures_of_the_whole_business(db):
    with db.transaction() as session:
        build_surveys(session)
    with db.transaction(readonly=True) as session:
        report = build_report(session, since=SINCE, until=NOW, minutes_per_task=5)
        assert report.surveys == survey_figures(session, period=WINDOW, filters=ALL)
    data = report_as_dict(report)["surveys"]
    assert data["overall"] == {"name": "all", "sent": 6, "answered": 4, "good": 3,
                               "response_rate": 4 / 6, "csat": 0.75}
    assert [team["name"] for team in data["by_team"]] == [NO_TEAM, "logistics", "sales"]


def test_the_console_figures_are_of_its_filters_and_answers_so_far(db):
    with db.transaction() as session:
        build_surveys(session)
    with db.transaction(readonly=True) as session:
        def overall(period, filters):
            return compute_kpis(session, period=period, filters=filters, tz="UTC",
                                minutes_saved_per_task=5, now=NOW).surveys.overall

        assert overall(WINDOW, KpiFilters(team="logistics")) == row("all", 2, 1, 1)
        # A period past NOW: S11 (sent at 13:00) and S5's answer (13:00) are yet to come.
        assert overall(Period(SINCE, d(20, 14)), ALL) == row("all", 6, 4, 3)

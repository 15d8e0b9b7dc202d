"""Customer satisfaction over a period: the surveys' response rate and CSAT, by agent, team
and category, and the ratings figure of the console.

Two measures, kept apart on purpose:

- **Survey figures** (`survey_figures`) count the `surveys` table only. The cohort is the
  surveys *sent in the period* (WhatsApp accepted them: `sent_at` in it, status sent or
  answered; scheduled, skipped and failed ones were never sent). Of those, *answered* are the
  ones answered by the period's end; *good* the answers the survey counted as satisfied
  (`Survey.good`). Response rate = answered / sent; CSAT = good / answered; both fractions
  (0–1), None when the denominator is 0. A survey sent before the period counts in no
  period but its own, even when answered in this one, so a rate never exceeds 100 %. Rows
  are grouped by the agent, team and category the survey recorded when the task closed.
- **Ratings** (`csat_figure`, as before surveys existed): every 1–5 rating a customer gave
  in the period, with or without a survey; CSAT % = ratings of GOOD_RATING or more /
  ratings. A text rating given without a survey counts here only.
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from store.events import Audit
from store.figures import (
    NO_CATEGORY,
    NO_TEAM,
    RATING_SCALE,
    UNASSIGNED,
    Bar,
    KpiFilters,
    Period,
    filter_conditions,
    task_conditions,
)
from store.models import Survey, SurveyStatus, Task, TaskEvent

GOOD_RATING = 4  # CSAT counts ratings of 4 and 5 as satisfied (the usual top-two-box)
SURVEYS_EXPLAIN = ("Surveys sent in the period (WhatsApp accepted them; skipped and failed "
                   "ones are not sent): response rate = answered by the period's end / sent; "
                   "CSAT = answers counted as satisfied / answers. Agent, team and category "
                   "are the task's when it closed.")


@dataclass(frozen=True)
class SurveyRow:
    name: str  # the agent, team or category; "all" for the whole period
    sent: int
    answered: int
    good: int  # answers counted as satisfied
    response_rate: float | None  # answered / sent (0–1); None when nothing was sent
    csat: float | None  # good / answered (0–1); None when nothing was answered


@dataclass(frozen=True)
class SurveyFigures:
    overall: SurveyRow
    by_agent: list[SurveyRow]
    by_team: list[SurveyRow]
    by_category: list[SurveyRow]


@dataclass(frozen=True)
class CsatFigure:
    answered: int
    distribution: list[Bar]  # key "1" … "5"
    csat_percent: float | None
    mean: float | None
    explain: str


def survey_row(name: str, sent: int, answered: int, good: int) -> SurveyRow:
    """The row of these counts, with its rates (None where a denominator is 0)."""
    return SurveyRow(name, sent, answered, good, answered / sent if sent else None,
                     good / answered if answered else None)


NO_SURVEYS = SurveyFigures(survey_row("all", 0, 0, 0), [], [], [])


def survey_figures(session: Session, *, period: Period,
                   filters: KpiFilters) -> SurveyFigures:
    """The surveys sent in `period` (see the module's docstring) passing `filters` (on the
    agent, team and category the survey recorded): overall and per agent, team and category,
    each list sorted by name. One grouped query."""
    answered = and_(Survey.answered_at.is_not(None), Survey.answered_at <= period.until)
    good = and_(answered, Survey.good.is_(True))
    query = (select(Survey.agent_id, Survey.team, Survey.category, func.count(),
                    func.sum(case((answered, 1), else_=0)), func.sum(case((good, 1), else_=0)))
             .where(Survey.sent_at.between(period.since, period.until),
                    Survey.status.in_([SurveyStatus.SENT, SurveyStatus.ANSWERED]),
                    *filter_conditions(filters, team=Survey.team, agent=Survey.agent_id,
                                       category=Survey.category))
             .group_by(Survey.agent_id, Survey.team, Survey.category))
    groups = [(agent or UNASSIGNED, team or NO_TEAM, category or NO_CATEGORY,
               (int(sent), int(answers or 0), int(goods or 0)))
              for agent, team, category, sent, answers, goods in session.execute(query)]
    return SurveyFigures(
        overall=survey_row("all", *_summed(counts for *_names, counts in groups)),
        by_agent=_rolled_up(groups, 0), by_team=_rolled_up(groups, 1),
        by_category=_rolled_up(groups, 2))


def _summed(counts: Iterable[tuple[int, int, int]]) -> tuple[int, int, int]:
    sent = answered = good = 0
    for one, two, three in counts:
        sent, answered, good = sent + one, answered + two, good + three
    return sent, answered, good


def _rolled_up(groups: list[tuple], position: int) -> list[SurveyRow]:
    """The groups summed per name at `position` (0 agent, 1 team, 2 category)."""
    names = sorted({group[position] for group in groups})
    return [survey_row(name, *_summed(group[3] for group in groups if group[position] == name))
            for name in names]


# --- ratings (the console's CSAT figure) -------------------------------------------------------


def rating_that_counts(since: Any, until: Any, cohort: Any) -> Any:
    """In SQL, a task's rating as store.reports counts it in [since, until]: the latest
    `rated` event in the period counts; a task of the period (`cohort`) never rated by an
    event counts its stored rating. A task rated again after the period is settled from its
    events (settle_ratings)."""
    rated_later = or_(Task.last_rated_at.is_(None), Task.last_rated_at > until)
    return case((Task.last_rated_at.between(since, until), Task.last_rating),
                (and_(cohort, rated_later), Task.rating), else_=None)


def settle_ratings(session: Session, *, period: Period, filters: KpiFilters,
                   counted: Mapping[int, Any]) -> dict[int, int]:
    """The rating that counts per task, those of 1–5: `counted` (rating_that_counts per task,
    where not None) with the tasks rated again after the period read from their events."""
    ratings = dict(counted)
    for task_id, (rated, latest) in _late_ratings(session, period, filters).items():
        if rated:  # by an event by the period's end: not the stored rating
            ratings.pop(task_id, None)
        if latest is not None:
            ratings[task_id] = latest
    return {task_id: rating for task_id, rating in ratings.items()
            if type(rating) is int and rating in RATING_SCALE}


def _late_ratings(session: Session, period: Period,
                  filters: KpiFilters) -> dict[int, tuple[bool, Any]]:
    """Of the tasks rated again after the period (only a period in the past has any): per
    task, whether it was rated by the period's end and its latest rating in the period."""
    late = list(session.scalars(select(Task.id).where(
        Task.last_rated_at > period.until, Task.created_at <= period.until,
        *task_conditions(filters))))
    if not late:
        return {}
    query = (select(TaskEvent.task_id, TaskEvent.details, TaskEvent.at)
             .where(TaskEvent.action == Audit.RATED, TaskEvent.task_id.in_(late),
                    TaskEvent.at <= period.until).order_by(TaskEvent.at, TaskEvent.id))
    found: dict[int, tuple[bool, Any]] = {task_id: (False, None) for task_id in late}
    for task_id, details, at in session.execute(query):
        latest = (details or {}).get("rating") if at >= period.since else found[task_id][1]
        found[task_id] = (True, latest)
    return found


def csat_figure(ratings: Mapping[int, int]) -> CsatFigure:
    """The ratings figure of the ratings that count (per task, 1–5)."""
    counts = Counter(ratings.values())
    answered = sum(counts.values())
    good = sum(counts[score] for score in RATING_SCALE if score >= GOOD_RATING)
    mean = sum(ratings.values()) / answered if answered else None
    return CsatFigure(answered, [Bar(str(score), f"{score}★", counts[score])
                                 for score in RATING_SCALE],
                      100 * good / answered if answered else None, mean,
                      f"Ratings (1–5) given in the period; CSAT % = ratings of {GOOD_RATING} "
                      "or 5 / ratings answered; a task rated twice counts its latest rating.")

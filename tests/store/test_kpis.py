"""The console's KPI figures on the reports' constructed history: worked out by hand, and
equal to store.reports.compute_report's on the same data."""

import importlib.util
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from store.events import Audit
from store.kpis import (
    KpiFilters,
    Period,
    _LocalClock,
    compute_kpis,
    kpi_csv_rows,
    list_kpi_tasks,
    period_from,
)
from store.lifecycle import SYSTEM, Action, Actor, ActorKind
from store.models import Task
from store.reports import TaskRow, build_report, is_automated, load_report_rows, sla_outcome
from store.tasks import create_task
from tests.store.test_reports import NOW, SINCE, History, agent, build_history, d

FACTS = (Task.auto_routed_at, Task.manual_step_at, Task.first_accepted_at, Task.last_rated_at,
         Task.last_rating)
BOSS = Actor(ActorKind.AGENT, "boss", admin=True)
MIGRATION = Path(__file__).parents[2] / "store/migrations/versions/0012_kpi_task_facts.py"

PERIOD = Period(SINCE, NOW)
ALL = KpiFilters()


def kpis(session, *, filters=ALL, tz="UTC", period=PERIOD):
    return compute_kpis(session, period=period, filters=filters, tz=tz,
                        minutes_saved_per_task=12, now=NOW)


def counts(bars) -> dict[str, int]:
    return {bar.key: bar.count for bar in bars if bar.count}


def test_figures_on_the_constructed_history(db):
    with db.transaction() as session:
        build_history(session)
    with db.transaction(readonly=True) as session:
        found = kpis(session)
    assert found.created == 8  # T-3 … T-10
    # First reply − created: T-3 25 min, T-4 50 min, T-9 20 min, T-10 15 min (15 is the
    # 15–30 bucket's lower bound); T-5 … T-8 never answered.
    assert counts(found.first_response.buckets) == {"15-30m": 3, "30-60m": 1, "none": 4}
    assert found.first_response.median_seconds == 1350.0
    # Created per day: 17th T-3 within, T-4 breached; 18th T-5 breached, T-9 within; 19th
    # T-6 breached, T-7 no SLA; 20th T-8 pending, T-10 within.
    assert [(p.key, p.within, p.breached, p.pending) for p in found.sla.points] == [
        ("2026-11-17", 1, 1, 0), ("2026-11-18", 1, 1, 0), ("2026-11-19", 0, 1, 0),
        ("2026-11-20", 1, 0, 1)]
    assert found.sla.per == "day" and found.sla.share == 0.5
    assert counts(found.volume.hours) == {"8": 1, "9": 3, "10": 1, "11": 1, "14": 1, "15": 1}
    # T-1 1, T-3 5, T-4 2, T-9 4 (its latest), T-10 5 (stored, no `rated` event).
    assert counts(found.csat.distribution) == {"1": 1, "2": 1, "4": 1, "5": 2}
    assert (found.csat.answered, found.csat.csat_percent, found.csat.mean) == (5, 60.0, 3.4)
    assert all(figure.explain for figure in (found.first_response, found.sla, found.backlog,
                                             found.volume, found.csat, found.hours_saved))


# Windows ending before NOW: T-9 is rated 3 on the 18th and 4 on the 19th, T-5 is reassigned
# by a person, T-6 accepted before a person's reassignment, T-8 created on the 20th.
@pytest.mark.parametrize("until", [NOW, d(17, 12), d(18, 12), d(19, 0), d(19, 11), d(20, 10)])
def test_figures_agree_with_the_report(db, until):
    with db.transaction() as session:
        build_history(session)
    with db.transaction(readonly=True) as session:
        found = kpis(session, period=Period(SINCE, until))
        report = build_report(session, since=SINCE, until=until, minutes_per_task=12)
    assert found.created == report.created.total
    assert found.first_response.median_seconds == report.first_response.median_seconds
    assert sum(bar.count for bar in found.first_response.buckets) == report.created.total
    assert found.sla.share == report.sla.overall.share
    assert sum(p.within for p in found.sla.points) == report.sla.overall.within
    assert sum(p.breached for p in found.sla.points) == report.sla.overall.breached
    assert [(b.key, b.count) for b in found.backlog.points] == [
        (day.date.isoformat(), day.open) for day in report.backlog.by_day]
    assert found.csat.answered == report.satisfaction.count
    assert found.csat.mean == report.satisfaction.mean
    assert found.csat.csat_percent == (None if report.satisfaction.csat is None
                                       else pytest.approx(100 * report.satisfaction.csat))
    assert {int(b.key): b.count for b in found.csat.distribution} == \
        report.satisfaction.distribution
    assert found.hours_saved.automated == report.automation.automated
    assert found.hours_saved.hours == report.automation.hours_saved


def test_the_tasks_behind_each_bar(db):
    with db.transaction() as session:
        build_history(session)
    with db.transaction(readonly=True) as session:
        found = kpis(session)

        def listed(figure, key):
            return [task.id for task in list_kpi_tasks(
                session, period=PERIOD, filters=ALL, figure=figure, key=key, tz="UTC", now=NOW)]

        assert listed("first_response", "15-30m") == [3, 9, 10]
        assert listed("first_response", "none") == [5, 6, 7, 8]
        assert listed("volume", "9") == [3, 5, 10]
        assert listed("csat", "5") == [3, 10]
        assert listed("sla", "2026-11-17") == [3, 4]
        assert listed("sla", "2026-11-17:breached") == [4]
        for bar in found.backlog.points:
            assert len(listed("backlog", bar.key)) == bar.count
        assert len(listed("automated", "")) == found.hours_saved.automated
        with pytest.raises(ValueError, match="unknown figure"):
            listed("nothing", "1")


def test_filters_and_the_business_timezone(db):
    with db.transaction() as session:
        build_history(session)
    with db.transaction(readonly=True) as session:
        logistics = kpis(session, filters=KpiFilters(team="logistics"))
        madrid = kpis(session, tz="Europe/Madrid")
        unassigned = kpis(session, filters=KpiFilters(agent="(unassigned)"))
    assert logistics.created == 4  # T-3, T-5, T-9, T-10
    assert counts(madrid.volume.hours) == {"9": 1, "10": 3, "11": 1, "12": 1, "15": 1, "16": 1}
    assert unassigned.created == 2  # T-7 (nobody available) and T-8 (not routed yet)


def test_csv_rows_carry_no_customer_data(db):
    with db.transaction() as session:
        build_history(session)
    with db.transaction(readonly=True) as session:
        rows = list(kpi_csv_rows(session, period=PERIOD, filters=ALL, tz="UTC", now=NOW))
    assert [row["ref"] for row in rows] == ["T-3", "T-4", "T-5", "T-9", "T-6", "T-7", "T-10",
                                            "T-8"]
    assert rows[0] == {
        "ref": "T-3", "created_at": "2026-11-17T09:00:00+00:00", "category": "operations",
        "priority": "normal", "team": "logistics", "assignee": "ana", "status": "closed",
        "first_response_seconds": 1500.0, "resolution_seconds": 7200.0,
        "sla_outcome": "within", "rating": 5, "automated": True}
    assert {row["sla_outcome"] for row in rows} == {"within", "breached", "pending", "no_sla"}


NOON = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)  # 12:00 in Madrid


@pytest.mark.parametrize(("text", "start", "end", "since", "until"), [
    ("today", None, None, datetime(2026, 11, 23, 23, 0, tzinfo=UTC), NOON),
    ("7d", None, None, datetime(2026, 11, 17, 11, 0, tzinfo=UTC), NOON),
    ("30d", None, None, datetime(2026, 10, 25, 11, 0, tzinfo=UTC), NOON),
    ("custom", "2026-11-01", date(2026, 11, 2), datetime(2026, 10, 31, 23, 0, tzinfo=UTC),
     datetime(2026, 11, 2, 22, 59, 59, 999999, tzinfo=UTC)),
    ("custom", "2026-11-20", "2026-12-31", datetime(2026, 11, 19, 23, 0, tzinfo=UTC), NOON),
])
def test_period_from(text, start, end, since, until):
    assert period_from(text, now=NOON, tz="Europe/Madrid", start=start, end=end) == \
        Period(since, until)


@pytest.mark.parametrize(("text", "start", "end"), [
    ("yesterday", None, None), ("0d", None, None), ("custom", None, None),
    ("custom", "2026-11-02", "2026-11-01"), ("custom", "1 Nov", "2026-11-02"),
])
def test_period_from_refuses(text, start, end):
    with pytest.raises(ValueError):
        period_from(text, now=NOON, tz="Europe/Madrid", start=start, end=end)


def test_automated_tasks_are_those_reports_is_automated_counts(db):
    with db.transaction() as session:
        build_history(session)
    with db.transaction(readonly=True) as session:
        listed = list_kpi_tasks(session, period=PERIOD, filters=ALL, figure="automated",
                                key="", tz="UTC", now=NOW)
        tasks, events = load_report_rows(session, since=SINCE, until=NOW)
    by_task = defaultdict(list)
    for event in sorted(events, key=lambda e: (e.at, e.id)):
        by_task[event.task_id].append(event)
    expected = [t.id for t in sorted(tasks, key=lambda t: t.id)
                if SINCE <= t.created_at <= NOW and is_automated(by_task[t.id])]
    assert [task.id for task in listed] == expected == [3, 4, 6, 9, 10]


def test_a_long_period_plots_the_sla_share_per_iso_week(db):
    with db.transaction() as session:
        build_history(session)
    with db.transaction(readonly=True) as session:
        found = kpis(session, period=Period(datetime(2026, 10, 1, tzinfo=UTC), NOW))
        listed = list_kpi_tasks(session, period=Period(datetime(2026, 10, 1, tzinfo=UTC), NOW),
                                filters=ALL, figure="sla", key="2026-W47", tz="UTC", now=NOW)
    # T-2 was created on Sunday 15 November (ISO week 46), the others from Monday on (47);
    # T-1 and T-2 have no SLA
    assert found.sla.per == "week"
    assert [(p.key, p.within, p.breached) for p in found.sla.points] == [
        ("2026-W46", 0, 0), ("2026-W47", 3, 3)]
    assert [task.id for task in listed] == [1, 3, 4, 5, 6, 7, 8, 9, 10]


def test_a_rating_given_again_after_the_period_leaves_the_one_in_it(db):
    # T-9: rated 3 on the 18th, 4 on the 19th; a period ending on the 19th at 00:00 counts 3
    with db.transaction() as session:
        build_history(session)
    with db.transaction(readonly=True) as session:
        found = kpis(session, period=Period(SINCE, d(19, 0)))
        listed = list_kpi_tasks(session, period=Period(SINCE, d(19, 0)), filters=ALL,
                                figure="csat", key="3", tz="UTC", now=NOW)
    assert counts(found.csat.distribution) == {"1": 1, "2": 1, "3": 1, "5": 1}
    assert [task.id for task in listed] == [9]


def test_the_facts_are_kept_on_the_task_as_its_events_are_written(db):
    with db.transaction() as session:
        build_history(session)
    with db.transaction(readonly=True) as session:
        facts = {row.id: tuple(row[1:]) for row in session.execute(select(Task.id, *FACTS))}
    assert facts[5] == (d(18, 9), d(18, 9, 15), d(18, 9, 30), None, None)  # MARTA reassigned
    assert facts[9] == (d(18, 15), None, d(18, 15, 5), d(19, 12), 4)  # the latest rating
    assert facts[10] == (d(20, 9), None, d(20, 9, 5), None, None)  # rated with no event
    assert facts[7] == (None,) * 5  # nobody available, never accepted nor rated


def test_a_person_creating_a_task_and_an_odd_rating(db):
    with db.transaction() as session:
        task = create_task(session, title="by hand", category="support", priority="normal",
                           actor=agent("ana"), now=d(17, 9))
        History(session).event(task, Audit.RATED, d(17, 10), rating=7)  # not 1-5
        History(session).event(task, Audit.RATED, d(17, 9), rating=2)  # written late, older
        facts = tuple(session.execute(select(*FACTS).where(Task.id == task.id)).one())
    assert facts == (None, d(17, 9), None, d(17, 10), None)


def test_the_migration_backfills_the_facts_the_events_keep(db):
    spec = importlib.util.spec_from_file_location("migration_0012", MIGRATION)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    with db.transaction() as session:
        build_history(session)
        History(session).move(session.get(Task, 8), Action.ASSIGN, BOSS, d(20, 11, 5),
                              assignee="dan")  # a person's step
    with db.transaction() as session:
        kept = session.execute(select(Task.id, *FACTS).order_by(Task.id)).all()
        session.execute(update(Task).values(dict.fromkeys(column.key for column in FACTS)))
        migration.backfill(session.connection())
        assert session.execute(select(Task.id, *FACTS).order_by(Task.id)).all() == kept


OUTCOME_CASES = [  # first response (done, due), resolution (done, due), in hours from creation
    ((None, None), (None, None)), ((1, 2), (3, 4)), ((3, 2), (3, 4)), ((1, 2), (5, 4)),
    ((None, 2), (None, 4)), ((None, 30), (None, 40)), ((1, 2), (None, 40)),
    ((None, 2), (None, 40)), ((2, 2), (4, 4)), ((None, None), (3, 4)), ((1, 2), (None, None)),
    ((None, 24), (None, None)), ((3, 2), (None, 40)),
]


def test_the_sla_outcome_the_database_works_out_is_the_reports(db):
    created = d(18, 0)
    hours = {None: None} | {n: created + timedelta(hours=n) for n in range(41)}
    with db.transaction() as session:
        for (response, response_due), (resolved, resolution_due) in OUTCOME_CASES:
            create_task(session, title="case", category="support", priority="normal",
                        actor=SYSTEM, now=created, first_response_due=hours[response_due],
                        resolution_due=hours[resolution_due], first_response_at=hours[response],
                        resolved_at=hours[resolved])
    with db.transaction(readonly=True) as session:
        rows = list(kpi_csv_rows(session, period=Period(d(17, 0), d(19, 0)), filters=ALL,
                                 tz="UTC", now=NOW))
        tasks = session.scalars(select(Task).order_by(Task.id)).all()
        expected = [sla_outcome(TaskRow(
            id=t.id, category=t.category, channel=t.channel, team=None, assignee_id=None,
            status=t.status, created_at=t.created_at, first_response_at=t.first_response_at,
            first_response_due=t.first_response_due, resolved_at=t.resolved_at,
            resolution_due=t.resolution_due), d(19, 0)) for t in tasks]
    assert [row["sla_outcome"] for row in rows] == [str(outcome) for outcome in expected]
    assert len(set(expected)) == 4


@pytest.mark.parametrize("zone", ["Europe/Madrid", "Asia/Kolkata", "Australia/Lord_Howe",
                                  "America/St_Johns", "UTC"])
def test_the_local_clock_reads_as_astimezone(zone):
    # a year of instants 7 minutes 13 seconds apart crosses every change of offset, half-hour
    # ones (Lord Howe) included
    clock, tz = _LocalClock(ZoneInfo(zone)), ZoneInfo(zone)
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    for seconds in range(start, start + 366 * 86400, 433):
        local = datetime.fromtimestamp(seconds, tz)
        assert (clock.day(seconds), clock.hour(seconds)) == (local.date(), local.hour)

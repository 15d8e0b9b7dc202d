"""The KPI report on a constructed history whose every figure is worked out by hand below."""

from datetime import UTC, date, datetime, timedelta

import pytest

from store.events import Audit, record_event
from store.lifecycle import SYSTEM, Action, Actor, ActorKind
from store.reports import (
    AgentWork,
    BacklogDay,
    DurationStats,
    EventRow,
    SlaOutcome,
    SlaShare,
    TaskRow,
    build_report,
    compute_report,
    duration_stats,
    is_automated,
    report_as_dict,
    sla_outcome,
)
from store.tasks import create_task, transition_task


def d(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


SINCE, NOW = d(17, 0), d(20, 12)
MARTA = Actor(ActorKind.AGENT, "marta", supervises=frozenset({"logistics"}))
SOFIA = Actor(ActorKind.AGENT, "sofia", supervises=frozenset({"sales"}))
CUSTOMER = Actor(ActorKind.CUSTOMER, "34600000001")


def agent(name: str) -> Actor:
    return Actor(ActorKind.AGENT, name)


class History:
    """Writes tasks and events at fixed times, the way the product does."""

    def __init__(self, session) -> None:
        self.session = session

    def create(self, at, category, team, *, fr=None, res=None, channel="whatsapp"):
        return create_task(
            self.session, title=f"{category} question", category=category, priority="normal",
            actor=SYSTEM, now=at, team=team, channel=channel, first_response_due=fr,
            resolution_due=res,
        )  # fmt: skip

    def move(self, task, action, actor, at, assignee=None) -> None:
        transition_task(
            self.session, task=task, action=action, actor=actor, assignee_id=assignee, now=at
        )

    def event(self, task, action, at, actor="system", **details) -> None:
        record_event(self.session, task=task, actor=actor, action=action, details=details, at=at)

    def route(self, task, agent_id, at) -> None:
        self.event(task, Audit.ROUTED, at, agent=agent_id, automatic=True)
        self.move(task, Action.ASSIGN, SYSTEM, at, assignee=agent_id)

    def reply(self, task, actor, at) -> None:
        """An agent's reply that WhatsApp accepted at `at`: the `reply` event, and the first
        response as delivery records it (store.tasks.record_first_response)."""
        self.event(task, Audit.REPLY, at, actor=actor.label, text="on it")
        task.first_response_at = task.first_response_at or at

    def rate(self, task, rating, at) -> None:
        task.rating = rating
        self.event(task, Audit.RATED, at, actor=f"customer:{CUSTOMER.id}", rating=rating)


def build_history(session) -> None:
    """Ten tasks, T-1 and T-2 created before the window (17th 00:00 to 20th 12:00 UTC)."""
    h = History(session)
    ana, bea, carlos, dan = agent("ana"), agent("bea"), agent("carlos"), agent("dan")

    t1 = h.create(d(16, 10), "support", "support")  # closed and rated inside the window
    h.route(t1, "bea", d(16, 10, 1))
    h.event(t1, Audit.REMINDER, d(16, 10, 15), kind="first_response", percent=50)  # too early
    h.move(t1, Action.ACCEPT, bea, d(16, 10, 30))
    h.reply(t1, bea, d(16, 10, 40))
    h.move(t1, Action.CLOSE, bea, d(17, 9))
    h.rate(t1, 1, d(17, 10))

    t2 = h.create(d(15, 10), "support", "support")  # open the whole time
    h.route(t2, "ana", d(15, 10, 1))
    h.move(t2, Action.ACCEPT, ana, d(15, 10, 5))
    h.reply(t2, ana, d(15, 10, 50))
    h.move(t2, Action.WAIT, ana, d(15, 11))

    t3 = h.create(d(17, 9), "operations", "logistics", fr=d(17, 10), res=d(17, 17))
    h.route(t3, "ana", d(17, 9))
    h.move(t3, Action.ACCEPT, ana, d(17, 9, 10))
    h.move(t3, Action.START, ana, d(17, 9, 20))
    h.reply(t3, ana, d(17, 9, 25))
    h.move(t3, Action.RESOLVE, ana, d(17, 11))
    h.move(t3, Action.CLOSE, ana, d(17, 12))
    h.rate(t3, 5, d(17, 12, 30))

    t4 = h.create(d(17, 14), "support", "support", fr=d(17, 14, 30), res=d(18, 14))
    h.route(t4, "bea", d(17, 14))
    h.move(t4, Action.DECLINE, bea, d(17, 14, 5))
    h.route(t4, "carlos", d(17, 14, 6))
    h.event(t4, Audit.REMINDER, d(17, 14, 15), kind="first_response", percent=50)
    h.event(t4, Audit.REMINDER, d(17, 14, 24), kind="first_response", percent=80)
    h.move(t4, Action.ACCEPT, carlos, d(17, 14, 40))  # 10 min after its due time
    h.reply(t4, carlos, d(17, 14, 50))
    h.move(t4, Action.RESOLVE, carlos, d(18, 0))  # exactly at midnight: the 18th's
    h.move(t4, Action.CLOSE, carlos, d(18, 9, 5))
    h.rate(t4, 2, d(18, 10))

    t5 = h.create(d(18, 9), "operations", "logistics", fr=d(18, 10), res=d(18, 12), channel="web")
    h.route(t5, "ana", d(18, 9))
    h.event(t5, Audit.OFFER_EXPIRED, d(18, 9, 10), agent="ana")
    h.move(t5, Action.REASSIGN, MARTA, d(18, 9, 15), assignee="dan")  # a person routed it
    h.move(t5, Action.ACCEPT, dan, d(18, 9, 30))  # accepted, the customer never answered
    h.event(t5, Audit.REMINDER, d(18, 10, 30), kind="resolution", percent=50)
    h.event(t5, Audit.ESCALATED, d(18, 12), step="notify_supervisor")
    h.event(t5, Audit.ESCALATED, d(18, 12, 30), step="reassign")

    t6 = h.create(d(19, 8), "sales", "sales", fr=d(19, 9), res=d(21, 8))
    h.route(t6, "ana", d(19, 8))
    h.move(t6, Action.ACCEPT, ana, d(19, 8, 20))  # accepted in time, never answered: breached
    h.move(t6, Action.REASSIGN, SOFIA, d(19, 9), assignee="dan")  # after acceptance: still auto

    t7 = h.create(d(19, 10), "sales", "sales")  # no SLA, nobody available
    h.event(t7, Audit.UNROUTED, d(19, 10))

    h.create(d(20, 11), "support", "support", fr=d(20, 13), res=d(21, 11))  # T-8, not due yet

    t9 = h.create(d(18, 15), "support", "logistics", fr=d(18, 15, 30), res=d(19, 15))
    h.route(t9, "bea", d(18, 15))
    h.move(t9, Action.ACCEPT, bea, d(18, 15, 5))
    h.reply(t9, bea, d(18, 15, 20))
    h.move(t9, Action.RESOLVE, bea, d(18, 16))
    h.move(t9, Action.CLOSE, SYSTEM, d(18, 20))
    h.rate(t9, 3, d(18, 20, 30))
    h.move(t9, Action.REOPEN, CUSTOMER, d(18, 22))
    h.move(t9, Action.ACCEPT, bea, d(19, 10))
    h.move(t9, Action.RESOLVE, bea, d(19, 11))
    h.move(t9, Action.CLOSE, bea, d(19, 11, 5))
    h.rate(t9, 4, d(19, 12))  # replaces the 3

    t10 = h.create(d(20, 9), "operations", "logistics", fr=d(20, 10), res=d(20, 11))
    h.route(t10, "ana", d(20, 9))
    h.move(t10, Action.ACCEPT, ana, d(20, 9, 5))
    h.reply(t10, ana, d(20, 9, 15))
    h.move(t10, Action.RESOLVE, ana, d(20, 9, 35))
    h.move(t10, Action.CLOSE, ana, d(20, 9, 40))
    t10.rating = 5  # a rating with no `rated` event still counts


def share(within, breached, pending, no_sla, value) -> SlaShare:
    return SlaShare(within, breached, pending, no_sla, value)


def test_report_on_a_constructed_history(db):
    with db.transaction() as session:
        build_history(session)
    with db.transaction() as session:
        report = build_report(session, since=SINCE, until=NOW, minutes_per_task=12)

    # Created in the window: T-3 … T-10.
    assert report.created.total == 8
    assert report.created.by_category == {"operations": 3, "support": 3, "sales": 2}
    assert list(report.created.by_category) == ["operations", "support", "sales"]
    assert report.created.by_channel == {"whatsapp": 7, "web": 1}

    # First responses (first reply − created): T-3 1500, T-4 3000, T-9 1200, T-10 900 s;
    # T-5 and T-6 were accepted but never answered. Sorted 900 1200 1500 3000 → median
    # (1200 + 1500) / 2.
    assert report.first_response == DurationStats(4, 6600 / 4, 1350.0)
    # Time to accept (first accept − created): T-3 600, T-4 2400, T-5 1800, T-6 1200, T-9 300
    # (its re-accept after reopening does not count), T-10 300 s; sorted 300 300 600 1200
    # 1800 2400 → median (600 + 1200) / 2.
    assert report.accept == DurationStats(6, 6600 / 6, 900.0)
    # Resolutions: T-3 2 h, T-4 10 h, T-9 20 h (its last resolution), T-10 35 min;
    # sorted 2100 7200 36000 72000 → median (7200 + 36000) / 2.
    assert report.resolution == DurationStats(4, 117300 / 4, 21600.0)

    # Within: T-3, T-9, T-10. Breached: T-4 (late answer), T-5 (unresolved past its due),
    # T-6 (accepted in 20 min but no answer by 09:00 on the 19th). Pending: T-8 (answer due
    # at 13:00). No SLA: T-7.
    sla = report.sla
    assert sla.overall == share(3, 3, 1, 1, 3 / 6)
    assert sla.by_category == {
        "operations": share(2, 1, 0, 0, 2 / 3),
        "sales": share(0, 1, 0, 1, 0.0),
        "support": share(1, 1, 1, 0, 1 / 2),
    }
    assert sla.by_team == {
        "logistics": share(3, 1, 0, 0, 3 / 4),
        "sales": share(0, 1, 0, 1, 0.0),
        "support": share(0, 1, 1, 0, 0.0),
    }
    assert sla.by_agent == {
        "(unassigned)": share(0, 0, 1, 1, None),
        "ana": share(2, 0, 0, 0, 1.0),
        "bea": share(1, 0, 0, 0, 1.0),
        "carlos": share(0, 1, 0, 0, 0.0),
        "dan": share(0, 2, 0, 0, 0.0),  # T-5, T-6 (reassigned to dan) breached
    }

    alerts = report.alerts  # T-1's reminder on the 16th is outside the window
    assert (alerts.reminders, alerts.reminders_by_kind) == (
        3, {"first_response": 2, "resolution": 1},
    )  # fmt: skip
    assert (alerts.escalations, alerts.escalations_by_step) == (
        2, {"notify_supervisor": 1, "reassign": 1},
    )  # fmt: skip
    assert alerts.offers_expired == 1

    # Open at the end of each day: 17th T-2, T-4 (resolved at 00:00 on the 18th);
    # 18th T-2, T-5, T-9 (reopened at 22:00); 19th T-2, T-5, T-6, T-7; now T-2, T-5 … T-8.
    assert report.backlog.now == 5
    assert report.backlog.by_day == [
        BacklogDay(date(2026, 11, 17), 2),
        BacklogDay(date(2026, 11, 18), 3),
        BacklogDay(date(2026, 11, 19), 4),
        BacklogDay(date(2026, 11, 20), 5),
    ]

    # Distinct tasks per agent from the window's events; closes count for the assignee.
    assert report.agents == {
        "ana": AgentWork(assigned=4, accepted=3, closed=2),  # T-3 T-5 T-6 T-10 / T-3 T-6 T-10
        "bea": AgentWork(assigned=2, accepted=1, closed=2),  # T-4 T-9 / T-9 / T-1 T-9
        "carlos": AgentWork(assigned=1, accepted=1, closed=1),
        "dan": AgentWork(assigned=2, accepted=1, closed=0),
    }

    # Automated: T-3, T-4 (a decline is not routing), T-6, T-9, T-10; not T-5 (marta
    # reassigned it before acceptance), T-7 and T-8 (never routed).
    auto = report.automation
    assert (auto.automated, auto.created, auto.share) == (5, 8, 5 / 8)
    assert (auto.minutes_per_task, auto.hours_saved) == (12, 1.0)

    # Ratings in the window: T-1 1, T-3 5, T-4 2, T-9 4 (latest), T-10 5 (Task.rating).
    rated = report.satisfaction
    assert (rated.count, rated.mean, rated.csat) == (5, 17 / 5, 3 / 5)  # 5, 4, 5 are good
    assert rated.distribution == {1: 1, 2: 1, 3: 0, 4: 1, 5: 2}
    assert report.surveys.overall.sent == 0 and report.surveys.by_agent == []  # none sent


def test_report_as_json_data(db):
    with db.transaction() as session:
        build_history(session)
    with db.transaction() as session:
        report = build_report(session, since=SINCE, until=NOW, minutes_per_task=5)
    data = report_as_dict(report)
    assert data["window"] == {"since": SINCE.isoformat(), "until": NOW.isoformat()}
    assert data["first_response"] == {"count": 4, "mean_seconds": 1650.0, "median_seconds": 1350.0}
    assert data["accept"] == {"count": 6, "mean_seconds": 1100.0, "median_seconds": 900.0}
    assert data["sla"]["by_team"]["support"] == {
        "within": 0, "breached": 1, "pending": 1, "no_sla": 0, "share": 0.0,
    }  # fmt: skip
    assert data["backlog"]["by_day"][0] == {"date": "2026-11-17", "open": 2}
    assert data["automation"]["hours_saved"] == 5 * 5 / 60
    assert data["satisfaction"]["distribution"] == {"1": 1, "2": 1, "3": 0, "4": 1, "5": 2}


def test_a_narrower_window_leaves_earlier_tasks_and_events_out(db):
    with db.transaction() as session:
        build_history(session)
    with db.transaction() as session:
        report = build_report(session, since=d(20, 0), until=NOW, minutes_per_task=5)
    assert report.created.total == 2  # T-8, T-10
    assert report.sla.overall == share(1, 0, 1, 0, 1.0)
    assert report.backlog.by_day == [BacklogDay(date(2026, 11, 20), 5)]
    assert report.agents == {"ana": AgentWork(assigned=1, accepted=1, closed=1)}
    assert (report.alerts.reminders, report.alerts.escalations) == (0, 0)
    assert report.satisfaction.count == 1  # T-10's


def test_report_of_an_empty_database(db):
    with db.transaction() as session:
        report = build_report(session, since=SINCE, until=NOW, minutes_per_task=5)
    assert report.created.total == 0
    assert report.first_response == report.accept == DurationStats(0, None, None)
    assert report.sla.overall == share(0, 0, 0, 0, None)
    assert [day.open for day in report.backlog.by_day] == [0, 0, 0, 0]
    assert (report.automation.share, report.automation.hours_saved) == (None, 0)
    assert (report.satisfaction.count, report.satisfaction.mean) == (0, None)
    assert report.satisfaction.csat is None
    assert (report.surveys.overall.response_rate, report.surveys.overall.csat) == (None, None)


@pytest.mark.parametrize(
    ("done", "due", "outcome"),
    [
        (d(1, 10), d(1, 10), SlaOutcome.WITHIN),  # on the minute is in time
        (d(1, 11), d(1, 10), SlaOutcome.BREACHED),
        (None, d(1, 12), SlaOutcome.PENDING),  # due exactly now: not yet breached
        (None, d(1, 11), SlaOutcome.BREACHED),
        (None, None, SlaOutcome.NO_SLA),
    ],
)
def test_sla_outcome_of_the_first_response(done, due, outcome):
    task = TaskRow(
        id=1, category="sales", channel="whatsapp", team=None, assignee_id=None, status="new",
        created_at=d(1, 9), first_response_at=done, first_response_due=due,
    )  # fmt: skip
    assert sla_outcome(task, d(1, 12)) == outcome


def test_sla_breach_of_either_deadline_wins_over_pending():
    task = TaskRow(
        id=1, category="sales", channel="whatsapp", team=None, assignee_id="ana",
        status="accepted", created_at=d(1, 9), first_response_at=d(1, 11),
        first_response_due=d(1, 10), resolution_due=d(2, 9),
    )  # fmt: skip
    assert sla_outcome(task, d(1, 12)) == SlaOutcome.BREACHED


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        ([], DurationStats(0, None, None)),
        ([60], DurationStats(1, 60.0, 60.0)),
        ([10, 20, 60], DurationStats(3, 30.0, 20.0)),
        ([10, 20, 40, 90], DurationStats(4, 40.0, 30.0)),
    ],
)
def test_duration_stats(seconds, expected):
    assert duration_stats([timedelta(seconds=s) for s in seconds]) == expected


def ev(n, action, actor="system", **details) -> EventRow:
    return EventRow(id=n, task_id=1, at=d(1, 9, n), actor=actor, action=action, details=details)


ROUTED = ev(2, "routed", automatic=True)


@pytest.mark.parametrize(
    ("events", "automated"),
    [
        ([ev(1, "created"), ROUTED, ev(3, "assign"), ev(4, "accept", "agent:ana")], True),
        ([ev(1, "created"), ev(2, "routed", automatic=False), ev(3, "assign")], False),
        ([ev(1, "created"), ev(2, "unrouted"), ev(3, "accept", "agent:ana")], False),
        ([ev(1, "created", "agent:ana"), ROUTED, ev(3, "assign")], False),
        ([ev(1, "created"), ROUTED, ev(3, "assign"), ev(4, "reassign", "agent:marta")], False),
        ([ev(1, "created"), ROUTED, ev(3, "accept"), ev(4, "reassign", "agent:marta")], True),
    ],
)
def test_is_automated(events, automated):
    assert is_automated(events) is automated


def test_ratings_outside_the_scale_are_ignored():
    task = TaskRow(
        id=1, category="sales", channel="whatsapp", team=None, assignee_id=None,
        status="closed", created_at=d(1, 9),
    )  # fmt: skip
    events = [ev(1, "created"), ev(2, "rated", rating=9)]
    report = compute_report([task], events, since=d(1, 0), until=d(1, 12), minutes_per_task=5)
    assert (report.satisfaction.count, report.satisfaction.mean) == (0, None)

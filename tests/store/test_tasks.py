"""Reading tasks for agents: open tasks by scope, tasks waiting for an agent, counts."""

from datetime import UTC, datetime, timedelta

import pytest

from store.lifecycle import SYSTEM, Action, Actor, ActorKind
from store.tasks import (
    count_closed_by,
    count_open_tasks_by_status,
    count_waiting_tasks,
    create_task,
    list_open_tasks,
    list_waiting_tasks,
    transition_task,
)

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ANA = Actor(ActorKind.AGENT, "ana")

# name: (team, assignee, actions by ana after the assignment)
TASKS = {
    "new-logistics": ("logistics", None, ()),
    "new-sales": ("sales", None, ()),
    "assigned-ana": ("logistics", "ana", ()),
    "accepted-ana": ("sales", "ana", (Action.ACCEPT,)),
    "started-ana": ("logistics", "ana", (Action.ACCEPT, Action.START)),
    "closed-ana": ("logistics", "ana", (Action.ACCEPT, Action.CLOSE)),
    "assigned-luis": ("logistics", "luis", ()),
}


@pytest.fixture
def tasks(db):
    """The tasks of TASKS by name, in one open transaction."""
    with db.transaction() as session:
        found = {}
        for name, (team, assignee, actions) in TASKS.items():
            task = create_task(session, title=name, category="ops", priority="normal",
                               actor=SYSTEM, team=team, now=NOW)
            if assignee:
                transition_task(session, task=task, action=Action.ASSIGN, actor=SYSTEM,
                                assignee_id=assignee, now=NOW)
            for action in actions:
                transition_task(session, task=task, action=action, actor=ANA, now=NOW)
            found[name] = task
        session.flush()
        yield session, found


def titles(found) -> list[str]:
    return [task.title for task in found]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["new-logistics", "new-sales", "assigned-ana", "accepted-ana", "started-ana",
              "assigned-luis"]),
        ({"assignee_id": "ana"}, ["assigned-ana", "accepted-ana", "started-ana"]),
        ({"teams": ["sales"]}, ["new-sales", "accepted-ana"]),
        ({"teams": []}, []),
        ({"unassigned": True}, ["new-logistics", "new-sales"]),
        ({"unassigned": True, "teams": ("logistics",)}, ["new-logistics"]),
        ({"assignee_id": "ana", "teams": ["logistics"]}, ["assigned-ana", "started-ana"]),
    ],
)
def test_list_open_tasks(tasks, filters, expected):
    session, _ = tasks
    assert titles(list_open_tasks(session, limit=10, **filters)) == expected


def test_list_open_tasks_stops_at_the_limit(tasks):
    session, _ = tasks
    assert titles(list_open_tasks(session, limit=2)) == ["new-logistics", "new-sales"]


def test_waiting_tasks_are_new_unassigned_and_of_the_teams(tasks):
    session, _ = tasks
    assert titles(list_waiting_tasks(session, teams=["logistics", "sales"], limit=5)) == [
        "new-logistics", "new-sales"]
    assert titles(list_waiting_tasks(session, teams=["sales"], limit=5)) == ["new-sales"]
    assert list_waiting_tasks(session, teams=["logistics", "sales"], limit=1)[0].title == (
        "new-logistics")
    assert count_waiting_tasks(session, teams=["logistics", "sales"]) == 2
    assert count_waiting_tasks(session, teams=["support"]) == 0


def test_open_tasks_are_counted_by_status(tasks):
    session, _ = tasks
    assert count_open_tasks_by_status(session, assignee_id="ana") == {
        "assigned": 1, "accepted": 1, "in_progress": 1}
    assert count_open_tasks_by_status(session, assignee_id="nobody") == {}


def test_closings_are_counted_by_actor_and_time(tasks):
    session, _ = tasks
    assert count_closed_by(session, actor=ANA.label, since=NOW) == 1
    assert count_closed_by(session, actor=ANA.label, since=NOW + timedelta(seconds=1)) == 0
    assert count_closed_by(session, actor="agent:luis", since=NOW - timedelta(days=7)) == 0

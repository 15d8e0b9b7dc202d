"""Claims on the tasks whose timers are to schedule: only the tasks asked for, oldest first."""

from datetime import UTC, datetime

from store.lifecycle import SYSTEM, Action
from store.models import Task
from store.tasks import create_task, transition_task
from store.timers import claim_tasks_to_schedule, has_timers_to_schedule

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def test_a_claim_takes_at_most_its_limit_and_leaves_the_other_changed_tasks(db):
    with db.transaction() as session:
        tasks = [create_task(session, title=f"t{i}", category="ops", priority="normal",
                             actor=SYSTEM, team="sales", now=NOW) for i in range(3)]
        session.flush()
        ids = [task.id for task in tasks]
    with db.transaction() as session:
        assert [task.id for task in claim_tasks_to_schedule(session, limit=10)] == ids
        assert not has_timers_to_schedule(session)
    with db.transaction() as session:  # two tasks change: their generation moves on
        for task_id in ids[1:]:
            transition_task(session, task=session.get(Task, task_id), action=Action.ASSIGN,
                            actor=SYSTEM, assignee_id="ana", now=NOW)
    with db.transaction() as session:
        assert [task.id for task in claim_tasks_to_schedule(session, limit=1)] == [ids[1]]
    with db.transaction() as session:
        assert has_timers_to_schedule(session)
        assert [task.id for task in claim_tasks_to_schedule(session, limit=1)] == [ids[2]]
        assert not has_timers_to_schedule(session)

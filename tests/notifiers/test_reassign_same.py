"""`reassign` to the agent who already holds the task is refused with a clear answer and
changes nothing: before, it sent an accepted task back to `assigned` and offered it again."""

import pytest
from sqlalchemy import select

from notifiers.commands import run_command
from notifiers.grammar import CommandRequest
from store.events import Audit, list_events
from store.models import OutboxMessage, TaskStatus
from store.tasks import get_task
from tests.notifiers.helpers import NOW, config, make_task, simple_assign

CONFIG = config()


def slack(db, user, text):
    return run_command(db, CONFIG, CommandRequest("slack", user, text), now=NOW,
                       assign=simple_assign)


def snapshot(db, number):
    with db.transaction() as session:
        task = get_task(session, ref=number)
        trail = [e.action for e in list_events(session, task_id=number)]
        outbox = [row.kind for row in session.scalars(
            select(OutboxMessage).where(OutboxMessage.task_id == number))]
        return (task.status, task.assignee_id, task.accepted_at, task.version,
                task.timer_generation, trail, outbox)


@pytest.mark.parametrize("accepted", [True, False], ids=["accepted", "assigned"])
@pytest.mark.parametrize("user", ["U0MARTA", "U0ALBA"], ids=["supervisor", "admin"])
def test_a_reassign_to_the_current_assignee_is_refused_and_changes_nothing(db, accepted, user):
    with db.transaction() as session:
        number = make_task(session, assignee="ana").id
    if accepted:
        assert slack(db, "U0ANA", f"accept T-{number}").ok
    before = snapshot(db, number)
    answer = slack(db, user, f"reassign T-{number} ana")
    assert not answer.ok
    assert answer.text == f"T-{number} is already assigned to Ana García"
    assert answer.task_ref == f"T-{number}"
    assert snapshot(db, number) == before
    expected = TaskStatus.ACCEPTED if accepted else TaskStatus.ASSIGNED
    assert before[0] == expected


def test_someone_who_may_not_reassign_hears_that_first(db):
    with db.transaction() as session:
        number = make_task(session, assignee="ana").id
    answer = slack(db, "U0PABLO", f"reassign T-{number} ana")
    assert not answer.ok and "supervisor" in answer.text
    with db.transaction() as session:
        assert Audit.DENIED in [e.action for e in list_events(session, task_id=number)]


def test_a_reassign_to_someone_else_still_works(db):
    with db.transaction() as session:
        number = make_task(session, assignee="ana").id
    assert slack(db, "U0ANA", f"accept T-{number}").ok
    answer = slack(db, "U0MARTA", f"reassign T-{number} pablo")
    assert answer.ok, answer.text
    with db.transaction() as session:
        task = get_task(session, ref=number)
        assert (task.status, task.assignee_id) == (TaskStatus.ASSIGNED, "pablo")

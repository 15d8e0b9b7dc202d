from datetime import UTC, datetime

import pytest
from sqlalchemy import delete

from store.errors import IllegalTransition, NotAllowed, NotFound
from store.events import list_events
from store.lifecycle import SYSTEM, Action, Actor, ActorKind
from store.models import Task, TaskEvent, TaskStatus
from store.tasks import create_task, get_task, parse_ref, transition_task

ANA = Actor(ActorKind.AGENT, "ana")
LUIS = Actor(ActorKind.AGENT, "luis", teams=frozenset({"logistics"}))
MARTA = Actor(ActorKind.AGENT, "marta", supervises=frozenset({"logistics"}))
SARA = Actor(ActorKind.AGENT, "sara", teams=frozenset({"sales"}))
SOFIA = Actor(ActorKind.AGENT, "sofia", teams=frozenset({"sales"}), supervises=frozenset({"sales"}))
BOSS = Actor(ActorKind.AGENT, "boss", admin=True)
CUSTOMER = Actor(ActorKind.CUSTOMER, "34600111222")


def new_task(session, **fields):
    return create_task(
        session, title="Cambio de envío", category="operations", priority="high",
        actor=SYSTEM, team="logistics", **fields,
    )


def drive(db, steps):
    """Creates a task and applies (action, actor, assignee) steps; returns its ref."""
    with db.transaction() as session:
        ref = new_task(session).ref
    for action, actor, assignee in steps:
        with db.transaction() as session:
            task = get_task(session, ref=ref)
            transition_task(session, task=task, action=action, actor=actor, assignee_id=assignee)
    return ref


TO_ASSIGNED = [(Action.ASSIGN, SYSTEM, "ana")]
TO_ACCEPTED = TO_ASSIGNED + [(Action.ACCEPT, ANA, None)]
TO_IN_PROGRESS = TO_ACCEPTED + [(Action.START, ANA, None)]
TO_WAITING = TO_IN_PROGRESS + [(Action.WAIT, ANA, None)]
TO_RESOLVED = TO_IN_PROGRESS + [(Action.RESOLVE, ANA, None)]
TO_CLOSED = TO_IN_PROGRESS + [(Action.CLOSE, ANA, None)]

LEGAL = [
    ("assign", [], (Action.ASSIGN, SYSTEM, "ana"), "new", "assigned"),
    ("supervisor assigns", [], (Action.ASSIGN, MARTA, "ana"), "new", "assigned"),
    ("accept", TO_ASSIGNED, (Action.ACCEPT, ANA, None), "assigned", "accepted"),
    ("claim unassigned", [], (Action.ACCEPT, LUIS, None), "new", "accepted"),
    ("decline", TO_ASSIGNED, (Action.DECLINE, ANA, None), "assigned", "new"),
    ("start", TO_ACCEPTED, (Action.START, ANA, None), "accepted", "in_progress"),
    ("wait", TO_IN_PROGRESS, (Action.WAIT, ANA, None), "in_progress", "waiting_customer"),
    ("customer resumes", TO_WAITING, (Action.RESUME, CUSTOMER, None), "waiting_customer",
     "in_progress"),
    ("start again", TO_WAITING, (Action.START, ANA, None), "waiting_customer", "in_progress"),
    ("resolve", TO_IN_PROGRESS, (Action.RESOLVE, ANA, None), "in_progress", "resolved"),
    ("close", TO_IN_PROGRESS, (Action.CLOSE, ANA, None), "in_progress", "closed"),
    ("close resolved", TO_RESOLVED, (Action.CLOSE, SYSTEM, None), "resolved", "closed"),
    ("reopen", TO_CLOSED, (Action.REOPEN, CUSTOMER, None), "closed", "assigned"),
    ("reassign", TO_ACCEPTED, (Action.REASSIGN, MARTA, "luis"), "accepted", "assigned"),
    ("admin closes", TO_IN_PROGRESS, (Action.CLOSE, BOSS, None), "in_progress", "closed"),
]


@pytest.mark.parametrize(("name", "before", "step", "source", "target"), LEGAL,
                         ids=[row[0] for row in LEGAL])
def test_legal_transition_writes_its_audit_event(db, name, before, step, source, target):
    ref = drive(db, before)
    action, actor, assignee = step
    with db.transaction() as session:
        task = get_task(session, ref=ref)
        assert task.status == source
        assert transition_task(
            session, task=task, action=action, actor=actor, assignee_id=assignee
        ) == target
    with db.transaction() as session:
        task = get_task(session, ref=ref)
        last = list_events(session, task_id=task.id)[-1]
    assert task.status == target
    assert (last.action, last.actor, last.from_status, last.to_status) == (
        action.value, actor.label, source, target,
    )
    assert last.at.tzinfo is not None and last.at.utcoffset().total_seconds() == 0


ILLEGAL = [
    ("accept closed", TO_CLOSED, (Action.ACCEPT, ANA), IllegalTransition,
     "T-1 is closed; reopen it first"),
    ("note on resolved", TO_RESOLVED, (Action.START, ANA), IllegalTransition,
     "T-1 is resolved; reopen it first"),
    ("accept twice", TO_ACCEPTED, (Action.ACCEPT, ANA), IllegalTransition,
     "T-1 is already accepted by ana"),
    ("start before accept", TO_ASSIGNED, (Action.START, ANA), IllegalTransition,
     "T-1 is assigned; start works only when it is accepted or waiting customer"),
    ("reopen open", TO_ACCEPTED, (Action.REOPEN, SYSTEM), IllegalTransition,
     "T-1 is still open (accepted); there is nothing to reopen"),
    ("other agent accepts", TO_ASSIGNED, (Action.ACCEPT, LUIS), NotAllowed,
     "Only its assignee (ana), the logistics supervisor or an admin may accept T-1"),
    ("agent reassigns", TO_ACCEPTED, (Action.REASSIGN, ANA), NotAllowed,
     "Only the logistics supervisor or an admin may reassign T-1"),
    ("other closes", TO_IN_PROGRESS, (Action.CLOSE, LUIS), NotAllowed,
     "Only its assignee (ana), the logistics supervisor or an admin may close T-1"),
    ("customer closes", TO_IN_PROGRESS, (Action.CLOSE, CUSTOMER), NotAllowed,
     "Only its assignee (ana), the logistics supervisor or an admin may close T-1"),
    ("supervisor declines for agent", TO_ASSIGNED, (Action.DECLINE, MARTA), NotAllowed,
     "Only its assignee (ana) may decline T-1"),
    ("other team claims", [], (Action.ACCEPT, SARA), NotAllowed,
     "T-1 is not a task of your teams"),
    ("other team closes", TO_IN_PROGRESS, (Action.CLOSE, SARA), NotAllowed,
     "T-1 is not a task of your teams"),
    ("other team's supervisor reassigns", TO_ACCEPTED, (Action.REASSIGN, SOFIA), NotAllowed,
     "T-1 is not a task of your teams"),
    ("other team, closed task", TO_CLOSED, (Action.REOPEN, SOFIA), NotAllowed,
     "T-1 is not a task of your teams"),
]


@pytest.mark.parametrize(("name", "before", "step", "error", "message"), ILLEGAL,
                         ids=[row[0] for row in ILLEGAL])
def test_illegal_or_forbidden_transition_is_refused_and_changes_nothing(
    db, name, before, step, error, message
):
    ref = drive(db, before)
    with db.transaction() as session:
        task = get_task(session, ref=ref)
        status, events = task.status, len(list_events(session, task_id=task.id))
    with pytest.raises(error) as raised, db.transaction() as session:
        task = get_task(session, ref=ref)
        transition_task(session, task=task, action=step[0], actor=step[1], assignee_id="luis")
    assert str(raised.value) == message
    with db.transaction() as session:
        task = get_task(session, ref=ref)
        assert task.status == status
        assert len(list_events(session, task_id=task.id)) == events


def test_decline_remembers_who_declined_and_returns_the_task_to_routing(db):
    ref = drive(db, TO_ASSIGNED + [(Action.DECLINE, ANA, None)])
    with db.transaction() as session:
        task = get_task(session, ref=ref)
        assert (task.status, task.assignee_id, task.declined_by) == ("new", None, ["ana"])


def test_timestamps_are_set_and_timezone_aware_utc(db):
    ref = drive(db, TO_CLOSED)
    with db.transaction() as session:
        task = get_task(session, ref=ref)
    for value in (task.created_at, task.assigned_at, task.accepted_at, task.resolved_at,
                  task.closed_at):
        assert value is not None and value.tzinfo is not None
        assert value.utcoffset().total_seconds() == 0
    assert task.first_response_at is None  # transitions never answer the customer: a reply does


def test_naive_datetimes_are_refused(db):
    with pytest.raises(Exception, match="naive datetime"), db.transaction() as session:
        new_task(session, first_response_due=datetime(2026, 1, 1))


def test_numbers_and_refs_are_never_reused(db):
    with db.transaction() as session:
        first, second = new_task(session), new_task(session)
        refs = [first.ref, second.ref]
    with db.transaction() as session:  # a purge of the newest task must not free its number
        session.execute(delete(TaskEvent).where(TaskEvent.task_id == 2))
        session.execute(delete(Task).where(Task.id == 2))
    with db.transaction() as session:
        third = new_task(session)
    assert refs == ["T-1", "T-2"]
    assert (third.ref, third.number) == ("T-3", 3)


@pytest.mark.parametrize("text", ["T-7", "t7", "#7", "7", " T7 "])
def test_refs_are_read_in_every_form_people_write(text):
    assert parse_ref(text) == 7


@pytest.mark.parametrize("text", ["T-", "abc", "7a", ""])
def test_bad_refs_get_a_helpful_error(text):
    with pytest.raises(NotFound, match="write it as T-12 or 12"):
        parse_ref(text)


def test_missing_task_names_its_ref(db):
    with pytest.raises(NotFound, match="There is no task T-99999"), db.transaction() as session:
        get_task(session, ref="T-99999")


def test_created_event_is_written_with_the_task(db):
    when = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with db.transaction() as session:
        task = create_task(session, title="x", category="sales", priority="normal",
                           actor=SYSTEM, now=when)
        events = list_events(session, task_id=task.id)
    assert [(e.action, e.to_status, e.at) for e in events] == [("created", TaskStatus.NEW, when)]

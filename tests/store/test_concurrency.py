import threading

import pytest

from store.errors import ConcurrentUpdate, DomainError
from store.events import list_events
from store.lifecycle import SYSTEM, Action, Actor, ActorKind
from store.tasks import create_task, get_task, transition_task

ANA = Actor(ActorKind.AGENT, "ana")
MARTA = Actor(ActorKind.AGENT, "marta", supervises=frozenset({"logistics"}))


def test_two_concurrent_accepts_exactly_one_wins(db):
    with db.transaction() as session:
        task = create_task(session, title="x", category="operations", priority="high",
                           actor=SYSTEM, team="logistics")
        transition_task(session, task=task, action=Action.ASSIGN, actor=SYSTEM, assignee_id="ana")
        ref = task.ref
    # On PostgreSQL both sessions read the task before either writes; SQLite has one writer,
    # so the second transaction waits for the first and then sees the accepted task.
    both_read = threading.Barrier(2) if db.engine.dialect.name == "postgresql" else None
    outcomes: list[object] = []

    def accept(actor):
        try:
            with db.transaction() as session:
                task = get_task(session, ref=ref)
                if both_read:
                    both_read.wait(timeout=10)
                transition_task(session, task=task, action=Action.ACCEPT, actor=actor)
            outcomes.append("won")
        except DomainError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=accept, args=(actor,)) for actor in (ANA, MARTA)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert outcomes.count("won") == 1
    [lost] = [o for o in outcomes if o != "won"]
    if both_read:
        assert isinstance(lost, ConcurrentUpdate)
    with db.transaction() as session:
        task = get_task(session, ref=ref)
        accepts = [e for e in list_events(session, task_id=task.id) if e.action == "accept"]
    assert task.status == "accepted" and len(accepts) == 1


def test_a_stale_copy_cannot_overwrite_a_newer_change(db):
    with db.transaction() as session:
        task = create_task(session, title="x", category="sales", priority="normal", actor=SYSTEM)
        ref = task.ref
    with db.transaction() as session:
        stale = get_task(session, ref=ref)
    with db.transaction() as session:
        transition_task(session, task=get_task(session, ref=ref), action=Action.ASSIGN,
                        actor=SYSTEM, assignee_id="ana")
    with pytest.raises(ConcurrentUpdate), db.transaction() as session:
        stale = session.merge(stale, load=False)
        transition_task(session, task=stale, action=Action.ASSIGN, actor=SYSTEM,
                        assignee_id="luis")

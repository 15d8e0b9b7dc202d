"""The console's board (SLA states, filters, permissions, order, version) and task page."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from store.board import (
    AT_RISK_SHARE,
    BoardFilters,
    SlaState,
    board_version,
    list_board,
    load_task_page,
    sla_state,
)
from store.crypto import personal
from store.errors import NotAllowed, NotFound
from store.events import Audit, record_event
from store.gdpr import erase_contact
from store.lifecycle import SYSTEM, Action, Actor, ActorKind
from store.messages import record_inbound_message
from store.models import Direction, Message, Survey
from store.tasks import create_task, transition_task
from tests.notifiers.helpers import NOW, make_task

H = timedelta(hours=1)
ANA = Actor(ActorKind.AGENT, "ana", teams=frozenset({"logistics"}))
SOFIA = Actor(ActorKind.AGENT, "sofia", teams=frozenset({"sales"}),
              supervises=frozenset({"sales"}))
ALBA = Actor(ActorKind.AGENT, "alba", admin=True)
ALL = BoardFilters()


def row(status="assigned", assignee="ana", fr_due=None, fr_at=None, res_due=None,
        started=None, created=NOW - 4 * H):
    return SimpleNamespace(status=status, assignee_id=assignee, first_response_due=fr_due,
                           first_response_at=fr_at, resolution_due=res_due,
                           sla_started_at=started, created_at=created)


@pytest.mark.parametrize(("task", "state"), [
    (row(fr_due=NOW + 6 * H), SlaState.ON_TRACK),  # 40 % of 10 h gone
    (row(fr_due=NOW + 1 * H), SlaState.AT_RISK),  # exactly 80 %
    (row(fr_due=NOW + 1 * H + timedelta(seconds=1)), SlaState.ON_TRACK),
    (row(fr_due=NOW), SlaState.AT_RISK),  # due this instant: not yet breached
    (row(fr_due=NOW - timedelta(seconds=1)), SlaState.BREACHED),
    # answered: the resolution's deadline runs
    (row(fr_due=NOW - H, fr_at=NOW - 2 * H, res_due=NOW + 20 * H), SlaState.ON_TRACK),
    (row(fr_due=NOW + 6 * H, fr_at=NOW - H, res_due=NOW - H), SlaState.BREACHED),
    # reopened an hour ago: counted from then (1 h of 1.5 h = 67 %)
    (row(fr_at=NOW - 3 * H, res_due=NOW + H / 2, started=NOW - H), SlaState.ON_TRACK),
    (row(status="waiting_customer", fr_due=NOW - H), SlaState.PAUSED),
    (row(status="new", assignee=None, fr_due=NOW + 6 * H), SlaState.WAITING_TEAM),
    (row(status="new", assignee=None, fr_due=NOW - H), SlaState.BREACHED),
    (row(status="new", assignee="ana", fr_due=NOW + 6 * H), SlaState.ON_TRACK),
    (row(), SlaState.NO_SLA),
])
def test_sla_state(task, state):
    assert sla_state(task, NOW) is state


def test_the_at_risk_share_is_the_reminder_s():
    assert AT_RISK_SHARE == 0.8


def add(session, title, *, team, assignee=None, due=None, category="operations",
        priority="normal", contact_id=None):
    task = create_task(session, title=title, category=category, priority=priority,
                       actor=SYSTEM, team=team, first_response_due=due, contact_id=contact_id,
                       now=NOW - 4 * H)
    if assignee:
        transition_task(session, task=task, action=Action.ASSIGN, actor=SYSTEM,
                        assignee_id=assignee, now=NOW - 4 * H)
    return task


def fill(session) -> None:
    add(session, "one", team="logistics", due=NOW + 6 * H)  # T-1 waiting for the team
    add(session, "two", team="sales", assignee="sara", due=NOW - H, priority="high")  # T-2
    add(session, "three", team=None, assignee="pablo", due=NOW + H)  # T-3 at risk
    add(session, "four", team="sales", assignee="ana", category="sales")  # T-4 no SLA
    closed = add(session, "five", team="logistics", assignee="ana")  # T-5 closed: not shown
    transition_task(session, task=closed, action=Action.ACCEPT, actor=ANA, now=NOW - 3 * H)
    transition_task(session, task=closed, action=Action.CLOSE, actor=ANA, now=NOW - 2 * H)


def refs(board) -> list[str]:
    return [row.ref for row in board.rows]


@pytest.mark.parametrize(("actor", "shown"), [
    (ANA, ["T-3", "T-1", "T-4"]),  # their team's, no team's, their own
    (SOFIA, ["T-2", "T-3", "T-4"]),
    (ALBA, ["T-2", "T-3", "T-1", "T-4"]),
])
def test_the_board_shows_what_the_actor_may_see_by_due_time(db, actor, shown):
    with db.transaction() as session:
        fill(session)
    with db.transaction(readonly=True) as session:
        board = list_board(session, actor=actor, filters=ALL, now=NOW)
    assert refs(board) == shown
    assert board.total == len(shown)


def test_board_rows_and_options(db):
    with db.transaction() as session:
        fill(session)
    with db.transaction(readonly=True) as session:
        board = list_board(session, actor=ALBA, filters=ALL, now=NOW)
    first = board.rows[0]
    assert (first.ref, first.title, first.team, first.assignee_id, first.sla_state,
            first.due_at, first.priority) == ("T-2", "two", "sales", "sara", SlaState.BREACHED,
                                              NOW - H, "high")
    assert [row.sla_state for row in board.rows] == [
        SlaState.BREACHED, SlaState.AT_RISK, SlaState.WAITING_TEAM, SlaState.NO_SLA]
    assert board.options == {"team": ["logistics", "sales"],
                             "category": ["operations", "sales"],
                             "priority": ["high", "normal"],
                             "agent": ["(unassigned)", "ana", "pablo", "sara"]}


@pytest.mark.parametrize(("query", "shown"), [
    ({"team": "sales"}, ["T-2", "T-4"]),
    ({"agent": "(unassigned)"}, ["T-1"]),
    ({"agent": "ana", "team": ""}, ["T-4"]),
    ({"priority": "high"}, ["T-2"]),
    ({"category": "sales"}, ["T-4"]),
    ({"status": "new"}, ["T-1"]),
    ({"sla": "at_risk"}, ["T-3"]),
    ({"sla": "breached", "team": "logistics"}, []),
    ({"unknown": "x", "sla": None}, ["T-2", "T-3", "T-1", "T-4"]),
])
def test_board_filters(db, query, shown):
    with db.transaction() as session:
        fill(session)
    with db.transaction(readonly=True) as session:
        board = list_board(session, actor=ALBA, filters=BoardFilters.from_query(query), now=NOW)
    assert refs(board) == shown


def test_the_limit_cuts_the_rows_not_the_total(db):
    with db.transaction() as session:
        fill(session)
    with db.transaction(readonly=True) as session:
        board = list_board(session, actor=ALBA, filters=ALL, now=NOW, limit=2)
    assert (refs(board), board.total) == (["T-2", "T-3"], 4)


def test_the_version_moves_with_every_change(db):
    with db.transaction() as session:
        assert board_version(session) == 0
        task = add(session, "one", team="logistics")
    with db.transaction(readonly=True) as session:
        before = list_board(session, actor=ALBA, filters=ALL, now=NOW).version
    with db.transaction() as session:
        record_event(session, task=task, actor="agent:ana", action=Audit.NOTE,
                     details={"text": "called"}, at=NOW)
    with db.transaction(readonly=True) as session:
        assert board_version(session) > before > 0


def build_page(session):
    """A task of Carmen Ruiz's routed to ana, two messages each way and a note between."""
    task = make_task(session)
    record_event(session, task=task, actor=SYSTEM.label, action=Audit.ROUTED, at=NOW, details={
        "agent": "ana", "team": "logistics", "summary": "least loaded", "automatic": True,
        "candidates": [{"agent": "ana", "chosen": True, "reason": "chosen: 0 open of 5"},
                       {"agent": "pablo", "chosen": False, "reason": "away"}]})
    transition_task(session, task=task, action=Action.ASSIGN, actor=SYSTEM, assignee_id="ana",
                    reason="least loaded", now=NOW)
    record_inbound_message(session, provider_message_id="wamid.1", contact_id=task.contact_id,
                           type="text", text="¿Dónde está mi pedido?", media_id=None,
                           payload={}, at=NOW, task_id=task.id)
    record_event(session, task=task, actor="agent:ana", action=Audit.NOTE,
                 details={"text": "llamar al almacén"}, at=NOW + H)
    session.add(Message(direction=Direction.OUTBOUND, contact_id=task.contact_id,
                        task_id=task.id, type="text", text="Lo miramos", via="text",
                        sent_at=NOW + 2 * H, created_at=NOW + 2 * H))
    record_inbound_message(session, provider_message_id="wamid.2", contact_id=task.contact_id,
                           type="image", text=None, media_id="media-1", payload={},
                           at=NOW + 3 * H, task_id=task.id)
    return task


def test_the_task_page(db):
    with db.transaction() as session:
        task = build_page(session)
    with db.transaction(readonly=True) as session:
        page = load_task_page(session, actor=ANA, ref=task.ref, now=NOW + 4 * H)
    assert (page.ref, page.title, page.status, page.assignee_id) == (
        "T-1", "Cambio de envío", "assigned", "ana")
    assert page.sla_state is SlaState.NO_SLA
    assert page.customer.name == "Carmen Ruiz" and page.customer.wa_id == "34600000001"
    assert [(e.direction, e.who, e.type, e.text, e.media_id) for e in page.conversation] == [
        ("in", "Carmen Ruiz", "text", "¿Dónde está mi pedido?", None),
        ("internal", "agent:ana", "note", "llamar al almacén", None),
        ("out", "opsbot", "text", "Lo miramos", None),  # no person's reply: opsbot's own
        ("in", "Carmen Ruiz", "image", None, "media-1")]
    assert [e.action for e in page.audit] == ["created", "routed", "assign", "note"]
    assign = page.audit[2]
    assert (assign.from_status, assign.to_status) == ("new", "assigned")
    assert assign.details["reason"] == "least loaded"  # sealed, opened with Carmen's key
    assert page.routing.summary == "least loaded"
    assert [(c["agent"], c["reason"]) for c in page.routing.candidates] == [
        ("ana", "chosen: 0 open of 5"), ("pablo", "away")]


def test_the_task_page_shows_the_survey_and_its_comment(db):
    with db.transaction() as session:
        task = build_page(session)
        assert load_task_page(session, actor=ANA, ref=task.ref, now=NOW).survey is None
        key = task.contact.data_key_id
        session.add(Survey(task_id=task.id, contact_id=task.contact_id, due_at=NOW + H,
                           status="answered", via="interactive", sent_at=NOW + H, score=3,
                           good=True, answered_at=NOW + 2 * H, answered_by="button",
                           comment=personal("Muy amables", key), comment_at=NOW + 2 * H))
    with db.transaction(readonly=True) as session:
        survey = load_task_page(session, actor=ANA, ref=task.ref, now=NOW + 4 * H).survey
    assert (survey.status, survey.via, survey.score, survey.good, survey.answered_by,
            survey.comment) == ("answered", "interactive", 3, True, "button", "Muy amables")


def test_the_task_page_is_for_those_who_may_see_it(db):
    with db.transaction() as session:
        task = build_page(session)
    with db.transaction(readonly=True) as session:
        assert load_task_page(session, actor=ALBA, ref="1", now=NOW).ref == task.ref
        with pytest.raises(NotAllowed):
            load_task_page(session, actor=SOFIA, ref=task.ref, now=NOW)
        with pytest.raises(NotFound):
            load_task_page(session, actor=ALBA, ref="T-99", now=NOW)


def test_an_unreadable_title_is_empty(db):
    # titles of an erased customer open as crypto.ERASED: the board shows nothing instead
    with db.transaction() as session:
        task = make_task(session)
        contact_id = task.contact_id
    with db.transaction() as session:
        erase_contact(session, wa_id="34600000001", actor="admin", reason="asked",
                      now=NOW + H)
    with db.transaction(readonly=True) as session:
        board = list_board(session, actor=ALBA, filters=ALL, now=datetime.now(UTC))
    assert contact_id and [(r.title, r.customer_name) for r in board.rows] == [("", None)]

"""Running commands through their handlers, against a real database (no Slack, no Telegram)."""

from sqlalchemy import select

from bot.usecases.assignment import assign_task
from notifiers.commands import run_command
from notifiers.grammar import CommandRequest
from store.events import Audit, list_events
from store.models import AgentState, OutboxMessage, TaskEvent, TaskStatus
from store.tasks import get_task
from tests.notifiers.helpers import NOW, config, make_task, simple_assign

CONFIG = config()


def slack(db, user, text, key=None, assign=simple_assign):
    request = CommandRequest("slack", user, text, dedupe_key=key)
    return run_command(db, CONFIG, request, now=NOW, assign=assign)


def new_task(db, assignee="ana", **kwargs):
    with db.transaction() as session:
        return make_task(session, assignee=assignee, **kwargs).id


def task_of(db, number):
    with db.transaction() as session:
        return get_task(session, ref=number)


def outbox(db, kind=None):
    with db.transaction() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        rows = list(session.scalars(query))
    return [row for row in rows if kind is None or row.kind == kind]


def test_accept_start_wait_close_by_the_assignee(db):
    number = new_task(db)
    assert "T-1 accepted" in slack(db, "U0ANA", f"accept T-{number}").text
    assert slack(db, "U0ANA", f"start {number}").ok
    assert slack(db, "U0ANA", f"wait {number}").ok
    assert task_of(db, number).status == TaskStatus.WAITING_CUSTOMER
    closed = slack(db, "U0ANA", f"close {number} address changed")
    assert closed.ok and task_of(db, number).status == TaskStatus.CLOSED
    [closing] = outbox(db, "closing")
    assert closing.channel == "whatsapp"
    assert closing.payload["text"] == "Hola Carmen, cerramos la solicitud #1."
    with db.transaction() as session:
        actions = [e.action for e in list_events(session, task_id=number)]
    assert actions == ["created", "assign", "accept", "start", "wait", "close"]


def test_bad_input_gets_a_short_helpful_answer(db):
    new_task(db)
    assert slack(db, "U0ANA", "accept").text == "Usage: accept T-12"
    assert slack(db, "U0ANA", "accept T-99999").text == "There is no task T-99999"
    unknown = slack(db, "U0ANA", "frobnicate")
    assert not unknown.ok and unknown.text.startswith("I do not know 'frobnicate'")
    assert "accept REF" in slack(db, "U0ANA", "help").text


def test_unknown_user_is_refused_and_audited(db):
    answer = slack(db, "U0STRANGER", "tasks")
    assert not answer.ok and "U0STRANGER" in answer.text
    with db.transaction() as session:
        [event] = session.scalars(select(TaskEvent).where(TaskEvent.action == Audit.DENIED))
    assert (event.task_id, event.actor) == (None, "slack:U0STRANGER")


def test_someone_elses_task_needs_the_supervisor(db):
    number = new_task(db)
    refused = slack(db, "U0PABLO", f"reassign {number} pablo")
    assert not refused.ok and "supervisor" in refused.text
    assert task_of(db, number).assignee_id == "ana"
    allowed = slack(db, "U0MARTA", f"reassign {number} pablo")
    assert allowed.ok and task_of(db, number).assignee_id == "pablo"
    kinds = [(row.kind, row.agent_id) for row in outbox(db)]
    assert ("assigned", "pablo") in kinds and ("reassigned_away", "ana") in kinds
    with db.transaction() as session:
        denied = session.scalars(select(TaskEvent).where(TaskEvent.action == Audit.DENIED))
        assert [(e.task_id, e.actor) for e in denied] == [(number, "agent:pablo")]


def test_decline_offers_the_task_to_the_next_candidate(db):
    number = new_task(db)
    answer = slack(db, "U0ANA", f"decline {number} not my area")
    task = task_of(db, number)
    assert task.status == TaskStatus.ASSIGNED and task.assignee_id not in (None, "ana")
    assert task.declined_by == ["ana"]
    assert "Offered to" in answer.text
    assert outbox(db, "assigned")[-1].agent_id == task.assignee_id


def test_note_and_reply_relay_to_the_customer(db):
    number = new_task(db)
    assert slack(db, "U0ANA", f"note {number} called the courier").ok
    assert slack(db, "U0ANA", f"reply {number} Mañana llega", key="trig-1").ok
    [reply] = outbox(db, "reply")
    assert (reply.channel, reply.payload["text"]) == ("whatsapp", "Mañana llega")
    task = task_of(db, number)
    assert task.first_response_at is None  # set once WhatsApp accepts the reply (delivery)
    with db.transaction() as session:
        events = {e.action: e.details for e in list_events(session, task_id=number)}
    assert events["note"] == {"text": "called the courier"}
    assert events["reply"] == {"text": "Mañana llega"}


def test_a_replayed_delivery_changes_nothing(db):
    number = new_task(db)
    first = slack(db, "U0ANA", f"accept {number}", key="trigger-1")
    again = slack(db, "U0ANA", f"accept {number}", key="trigger-1")
    assert first.ok and not first.duplicate
    assert again.duplicate and again.text == ""
    with db.transaction() as session:
        assert [e.action for e in list_events(session, task_id=number)].count("accept") == 1


def test_telegram_ids_and_listing(db):
    number = new_task(db)
    request = CommandRequest("telegram", "111", "/tasks@opsbot_bot mine")
    answer = run_command(db, CONFIG, request, now=NOW)
    assert answer.text.startswith(f"T-{number} · assigned · normal · ana")
    shown = run_command(db, CONFIG, CommandRequest("telegram", "111", f"/show {number}"), now=NOW)
    assert "Customer: Carmen Ruiz" in shown.text
    stats = run_command(db, CONFIG, CommandRequest("telegram", "111", "/stats"), now=NOW)
    assert stats.text.startswith("Your open tasks: 1 assigned.")


def test_away_and_back_route_the_waiting_tasks(db):
    number = new_task(db, assignee=None)
    assert slack(db, "U0ANA", "away", assign=assign_task).text.startswith("You are away")
    with db.transaction() as session:
        assert session.get(AgentState, "ana").away is True
    back = slack(db, "U0ANA", "back", assign=assign_task)
    assert back.text.startswith("Welcome back. Waiting tasks routed: T-1 → ")
    with db.transaction() as session:
        assert session.get(AgentState, "ana").away is False
    assert task_of(db, number).status == TaskStatus.ASSIGNED


def test_listing_scopes_and_stats(db):
    mine, waiting = new_task(db), new_task(db, assignee=None)
    other = new_task(db, assignee="pablo")
    assert slack(db, "U0PABLO", f"accept {other}").ok
    # no router: closing frees pablo's capacity, and the waiting task should stay waiting here
    assert slack(db, "U0PABLO", f"close {other}", assign=None).ok

    def listed(scope):
        return [line.split(" · ")[0] for line in slack(db, "U0ANA", f"tasks {scope}").text
                .splitlines()]

    assert listed("mine") == [f"T-{mine}"]
    assert listed("team") == listed("open") == [f"T-{mine}", f"T-{waiting}"]
    assert listed("unassigned") == [f"T-{waiting}"]
    assert slack(db, "U0ANA", "tasks everything").text == (
        "Usage: tasks [mine|team|open|unassigned]")
    assert slack(db, "U0PABLO", "tasks mine").text == "No open tasks of yours right now."
    assert slack(db, "U0PABLO", "stats").text == (
        "Your open tasks: none.\nWaiting for your teams: 1.\n"
        "Closed by you in the last 7 days: 1.")


def test_an_away_agent_is_not_offered_tasks(db):
    number = new_task(db, assignee="pablo")
    for user in ("U0ANA", "U0MARTA"):
        assert slack(db, user, "away").ok
    assert slack(db, "U0PABLO", f"decline {number}").ok
    assert task_of(db, number).assignee_id == "tina"

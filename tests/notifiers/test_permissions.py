"""Who may do what: every verb × role × task state, through the command layer.

An agent sees and acts on the tasks of their teams (claiming an unassigned one included) and on
their own; a supervisor on their teams' tasks; an admin on every task. A refusal is audited as
`denied`, names nothing of the task, and changes nothing: no transition, no outbox row.
"""

from itertools import product

import pytest
from sqlalchemy import select

from notifiers.commands import run_command
from notifiers.grammar import CommandRequest
from store.events import Audit, list_events
from store.models import OutboxMessage, TaskEvent
from store.tasks import get_task
from tests.notifiers.helpers import NOW, config, make_task, simple_assign

CONFIG = config()

# role -> (Slack user, agent id). The task is a logistics task; in state `unassigned` the
# "assignee" is ana as a plain member of logistics.
ROLES = {
    "assignee": ("U0ANA", "ana"),  # logistics
    "member": ("U0PABLO", "pablo"),  # logistics
    "other_agent": ("U0SARA", "sara"),  # sales
    "supervisor": ("U0MARTA", "marta"),  # supervises logistics (and is in it)
    "other_supervisor": ("U0SOFIA", "sofia"),  # supervises sales
    "admin": ("U0ALBA", "alba"),  # admin, of no team
}
OUTSIDERS = ("other_agent", "other_supervisor")
TEAM = frozenset({"assignee", "member", "supervisor", "admin"})
STAFF = frozenset({"assignee", "supervisor", "admin"})

# (command, task state, roles allowed); every other role is refused.
TASK_VERBS = [
    ("show {ref}", "assigned", TEAM),
    ("show {ref}", "unassigned", TEAM),
    ("show {ref}", "closed", TEAM),
    ("accept {ref}", "assigned", STAFF),
    ("accept {ref}", "unassigned", TEAM),  # a claim: members of the task's team only
    ("decline {ref} not mine", "assigned", frozenset({"assignee"})),
    ("decline {ref} not mine", "accepted", frozenset({"assignee"})),
    ("start {ref}", "accepted", STAFF),
    ("start {ref}", "waiting", STAFF),
    ("wait {ref}", "in_progress", STAFF),
    ("note {ref} called the courier", "assigned", STAFF),
    ("note {ref} called the courier", "unassigned", TEAM),
    ("reply {ref} Mañana llega", "assigned", STAFF),
    ("reply {ref} Mañana llega", "unassigned", TEAM),
    ("reply {ref} Mañana llega", "in_progress", STAFF),
    ("close {ref} done", "in_progress", STAFF),
    ("close {ref} done", "waiting", STAFF),
    ("reassign {ref} pablo", "assigned", frozenset({"supervisor", "admin"})),
    ("reassign {ref} pablo", "unassigned", frozenset({"supervisor", "admin"})),
]

# How each state is reached, by the assignee through the command layer.
STEPS = {
    "unassigned": (None, []),
    "assigned": ("ana", []),
    "accepted": ("ana", ["accept"]),
    "in_progress": ("ana", ["accept", "start"]),
    "waiting": ("ana", ["accept", "start", "wait"]),
    "closed": ("ana", ["accept", "start", "close"]),
}


def slack(db, user, text, key=None):
    request = CommandRequest("slack", user, text, dedupe_key=key)
    return run_command(db, CONFIG, request, now=NOW, assign=simple_assign)


def task_in(db, state, team="logistics"):
    assignee, verbs = STEPS[state]
    with db.transaction() as session:
        number = make_task(session, assignee=assignee, team=team).id
    for verb in verbs:
        assert slack(db, "U0ANA", f"{verb} {number}").ok
    return number


def snapshot(db, number):
    """What a refusal must leave as it was: the task, its trail (but denials), the outbox."""
    with db.transaction() as session:
        task = get_task(session, ref=number)
        trail = [(e.action, e.actor) for e in list_events(session, task_id=number)
                 if e.action != Audit.DENIED]
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.task_id == number))
        outbox = [(row.kind, row.agent_id) for row in rows]
        return task.status, task.assignee_id, task.version, trail, outbox


def denials(db):
    with db.transaction() as session:
        events = session.scalars(select(TaskEvent).where(TaskEvent.action == Audit.DENIED))
        return [(e.task_id, e.actor, e.details.get("verb")) for e in events]


@pytest.mark.parametrize(
    ("command", "state", "allowed", "role"),
    [(command, state, allowed, role)
     for (command, state, allowed), role in product(TASK_VERBS, ROLES)],
    ids=[f"{command.split()[0]}-{state}-{role}"
         for (command, state, _), role in product(TASK_VERBS, ROLES)],
)
def test_a_task_verb_is_allowed_or_refused_audited_and_harmless(db, command, state, allowed,
                                                                 role):
    number = task_in(db, state)
    user, agent = ROLES[role]
    before = snapshot(db, number)
    answer = slack(db, user, command.format(ref=f"T-{number}"), key="the-delivery")
    if role in allowed:
        assert answer.ok, answer.text
        assert denials(db) == []
        return
    assert not answer.ok
    assert denials(db) == [(number, f"agent:{agent}", command.split()[0])]
    assert snapshot(db, number) == before
    if role in OUTSIDERS:  # not a word about a task of another team
        assert "Carmen" not in answer.text and "envío" not in answer.text
        assert "ana" not in answer.text and "logistics" not in answer.text


def test_an_outsider_replying_sends_nothing_to_the_customer(db):
    number = task_in(db, "unassigned")
    answer = slack(db, "U0SARA", f"reply T-{number} Soy de ventas")
    assert not answer.ok
    assert answer.text == f"T-{number} is not a task of your teams"
    with db.transaction() as session:
        assert list(session.scalars(select(OutboxMessage))) == []


# (role, scope) -> the tasks listed, of: 1 logistics assigned to ana, 2 logistics unassigned,
# 3 sales unassigned.
LISTED = {
    "mine": {"assignee": [1], "member": [], "other_agent": [], "supervisor": [],
             "other_supervisor": [], "admin": []},
    "team": {"assignee": [1, 2], "member": [1, 2], "other_agent": [3], "supervisor": [1, 2],
             "other_supervisor": [3], "admin": []},
    "open": {"assignee": [1, 2], "member": [1, 2], "other_agent": [3], "supervisor": [1, 2],
             "other_supervisor": [3], "admin": [1, 2, 3]},
    "unassigned": {"assignee": [2], "member": [2], "other_agent": [3], "supervisor": [2],
                   "other_supervisor": [3], "admin": [2, 3]},
}
WAITING_FOR_THE_TEAMS = {"assignee": 1, "member": 1, "other_agent": 1, "supervisor": 1,
                         "other_supervisor": 1, "admin": 0}


@pytest.fixture
def three_tasks(db):
    assert task_in(db, "assigned") == 1
    assert task_in(db, "unassigned") == 2
    assert task_in(db, "unassigned", team="sales") == 3


@pytest.mark.parametrize(("scope", "role"), list(product(LISTED, ROLES)))
def test_tasks_lists_only_what_the_role_may_see(db, three_tasks, scope, role):
    answer = slack(db, ROLES[role][0], f"tasks {scope}")
    assert answer.ok
    listed = [int(line.split(" · ")[0].removeprefix("T-")) for line in answer.text.splitlines()
              if line.startswith("T-")]
    assert listed == LISTED[scope][role]
    assert denials(db) == []


# The verbs about no task: everyone may use them; none shows another team's task.
TASKLESS = ["tasks", "stats", "help", "away", "back"]


@pytest.mark.parametrize(("verb", "role"), list(product(TASKLESS, ROLES)))
def test_a_verb_about_no_task_is_allowed_and_keeps_to_the_teams(db, three_tasks, verb, role):
    before = {number: snapshot(db, number) for number in (1, 2)}
    answer = slack(db, ROLES[role][0], verb)
    assert answer.ok, answer.text
    assert denials(db) == []
    if verb == "stats":
        waiting = WAITING_FOR_THE_TEAMS[role]
        assert f"Waiting for your teams: {waiting}." in answer.text
    if role in OUTSIDERS:
        assert "T-1" not in answer.text and "T-2" not in answer.text
        assert {number: snapshot(db, number) for number in (1, 2)} == before


def test_a_task_of_no_team_is_everyones(db):
    with db.transaction() as session:
        number = make_task(session, team=None).id
    assert slack(db, "U0SARA", f"show T-{number}").ok
    assert slack(db, "U0SARA", f"accept T-{number}").ok

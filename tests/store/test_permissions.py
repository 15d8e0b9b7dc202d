"""The permission table of store/lifecycle.py: roles per actor × task, what each role may do
besides transitions (see, note, reply), and the SQL form of "may see" agreeing with it."""

import pytest

from store.errors import NotAllowed
from store.lifecycle import (
    SYSTEM,
    Access,
    Actor,
    ActorKind,
    Role,
    check_access,
    roles_of,
    visible_to,
)
from store.models import Task, TaskStatus
from store.tasks import create_task, list_open_tasks

R = Role
ACTORS = {
    "assignee": Actor(ActorKind.AGENT, "ana", teams=frozenset({"logistics"})),
    "member": Actor(ActorKind.AGENT, "luis", teams=frozenset({"logistics"})),
    "other_agent": Actor(ActorKind.AGENT, "sara", teams=frozenset({"sales"})),
    "supervisor": Actor(ActorKind.AGENT, "marta", supervises=frozenset({"logistics"})),
    "other_supervisor": Actor(ActorKind.AGENT, "sofia", teams=frozenset({"sales"}),
                              supervises=frozenset({"sales"})),
    "admin": Actor(ActorKind.AGENT, "boss", admin=True),
}

# (task: team, assignee, status) -> the roles each actor holds on it.
TASKS = {
    "assigned": ("logistics", "ana", TaskStatus.ASSIGNED),
    "unassigned": ("logistics", None, TaskStatus.NEW),
    "no team": (None, None, TaskStatus.NEW),
    "across teams": ("sales", "ana", TaskStatus.ACCEPTED),  # reassigned to ana by sales
}
ROLES = {
    "assigned": {"assignee": {R.ASSIGNEE, R.MEMBER}, "member": {R.MEMBER}, "other_agent": set(),
                 "supervisor": {R.SUPERVISOR}, "other_supervisor": set(),
                 "admin": {R.ADMIN}},
    "unassigned": {"assignee": {R.MEMBER, R.CLAIMANT}, "member": {R.MEMBER, R.CLAIMANT},
                   "other_agent": set(), "supervisor": {R.SUPERVISOR},
                   "other_supervisor": set(), "admin": {R.ADMIN}},
    "no team": {name: {R.MEMBER, R.CLAIMANT} for name in ACTORS}
    | {"admin": {R.MEMBER, R.CLAIMANT, R.ADMIN}},
    "across teams": {"assignee": {R.ASSIGNEE}, "member": set(), "other_agent": {R.MEMBER},
                     "supervisor": set(), "other_supervisor": {R.MEMBER, R.SUPERVISOR},
                     "admin": {R.ADMIN}},
}


def task(kind: str, number: int = 7) -> Task:
    team, assignee, status = TASKS[kind]
    return Task(id=number, team=team, assignee_id=assignee, status=status)


@pytest.mark.parametrize(("kind", "actor"), [(k, a) for k in TASKS for a in ACTORS])
def test_roles_of_each_actor_on_each_task(kind, actor):
    assert roles_of(ACTORS[actor], task(kind)) == ROLES[kind][actor]


@pytest.mark.parametrize("access", list(Access))
@pytest.mark.parametrize(("kind", "actor"), [(k, a) for k in TASKS for a in ACTORS])
def test_check_access_follows_the_table(kind, actor, access):
    allowed = {
        Access.SEE: {R.ASSIGNEE, R.MEMBER, R.SUPERVISOR, R.ADMIN},
        Access.NOTE: {R.ASSIGNEE, R.CLAIMANT, R.SUPERVISOR, R.ADMIN},
        Access.REPLY: {R.ASSIGNEE, R.CLAIMANT, R.SUPERVISOR, R.ADMIN},
    }[access]
    if ROLES[kind][actor] & allowed:
        check_access(task(kind), access, ACTORS[actor])
        return
    with pytest.raises(NotAllowed) as refused:
        check_access(task(kind), access, ACTORS[actor])
    if not ROLES[kind][actor]:  # sees nothing: the refusal tells nothing
        assert str(refused.value) == "T-7 is not a task of your teams"


def test_a_member_refused_a_note_is_told_who_may():
    with pytest.raises(NotAllowed) as refused:
        check_access(task("assigned"), Access.NOTE, ACTORS["member"])
    assert str(refused.value) == (
        "Only its assignee (ana), the logistics supervisor or an admin may add a note to T-7")


def test_opsbot_itself_sees_every_task():
    assert visible_to(SYSTEM) is None and visible_to(ACTORS["admin"]) is None


@pytest.mark.parametrize("actor", list(ACTORS))
def test_the_query_shows_exactly_the_tasks_the_table_lets_see(db, actor):
    with db.transaction() as session:
        numbers = {}
        for kind, (team, assignee, _status) in TASKS.items():
            created = create_task(session, title=kind, category="operations",
                                  priority="normal", actor=SYSTEM, team=team,
                                  assignee_id=assignee)
            numbers[created.id] = kind
        listed = list_open_tasks(session, seen_by=ACTORS[actor], limit=50)
        seen = {numbers[found.id] for found in listed}
    expected = {kind for kind in TASKS
                if ROLES[kind][actor] & {R.ASSIGNEE, R.MEMBER, R.SUPERVISOR, R.ADMIN}}
    assert seen == expected

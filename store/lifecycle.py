"""The task state machine and the permission table: which action moves a task from where to
where, who may do it, and who may see a task, note on it or reply on it.

An agent sees and acts on the tasks of their teams (a task of no team is everyone's) and on
the tasks assigned to them; a supervisor on the tasks of the teams they supervise; an admin on
every task. Claiming (accepting) an unassigned task is for the members of its team.
"""

from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import ColumnElement, or_

from store.errors import IllegalTransition, NotAllowed
from store.models import OPEN_STATUSES, Task, TaskStatus

S = TaskStatus


class Action(StrEnum):
    ASSIGN = "assign"
    REASSIGN = "reassign"
    ACCEPT = "accept"
    DECLINE = "decline"
    START = "start"
    WAIT = "wait"
    RESUME = "resume"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"


class Role(StrEnum):
    ASSIGNEE = "assignee"
    MEMBER = "member"  # an agent of the task's team
    CLAIMANT = "claimant"  # a member, while the task waits without an assignee
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    SYSTEM = "system"
    CUSTOMER = "customer"


class ActorKind(StrEnum):
    AGENT = "agent"
    SYSTEM = "system"
    CUSTOMER = "customer"


@dataclass(frozen=True)
class Actor:
    """Who asks for a change; an agent's `teams` are those it belongs to, `supervises` those
    it supervises."""

    kind: ActorKind
    id: str | None = None
    supervises: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False
    teams: frozenset[str] = field(default_factory=frozenset)

    @property
    def label(self) -> str:
        return self.kind.value if self.id is None else f"{self.kind.value}:{self.id}"

    @property
    def all_teams(self) -> frozenset[str]:
        """The teams this agent belongs to or supervises."""
        return self.teams | self.supervises


SYSTEM = Actor(ActorKind.SYSTEM)


def customer_actor(contact_id: int) -> Actor:
    """A customer as the audit trail names them: by their contact's number, never by their
    phone number (an actor is not sealed: it names who acted, for as long as the audit
    lasts)."""
    return Actor(ActorKind.CUSTOMER, f"contact-{contact_id}")


@dataclass(frozen=True)
class Transition:
    sources: frozenset[TaskStatus]
    target: TaskStatus | None  # None: decided by the task (reopen goes back to its assignee)
    roles: frozenset[Role]


def _t(sources, target, *roles: Role) -> Transition:
    return Transition(frozenset(sources), target, frozenset(roles))


_STAFF = (Role.ASSIGNEE, Role.SUPERVISOR, Role.ADMIN)
_WORKING = (S.ACCEPTED, S.IN_PROGRESS, S.WAITING_CUSTOMER)

TRANSITIONS: dict[Action, Transition] = {
    Action.ASSIGN: _t({S.NEW}, S.ASSIGNED, Role.SYSTEM, Role.SUPERVISOR, Role.ADMIN),
    Action.REASSIGN: _t(OPEN_STATUSES, S.ASSIGNED, Role.SYSTEM, Role.SUPERVISOR, Role.ADMIN),
    Action.ACCEPT: _t({S.NEW, S.ASSIGNED}, S.ACCEPTED, *_STAFF, Role.CLAIMANT),
    Action.DECLINE: _t({S.ASSIGNED, S.ACCEPTED}, S.NEW, Role.ASSIGNEE, Role.SYSTEM),
    Action.START: _t({S.ACCEPTED, S.WAITING_CUSTOMER}, S.IN_PROGRESS, *_STAFF),
    Action.WAIT: _t({S.ACCEPTED, S.IN_PROGRESS}, S.WAITING_CUSTOMER, *_STAFF),
    Action.RESUME: _t({S.WAITING_CUSTOMER}, S.IN_PROGRESS, Role.CUSTOMER, Role.SYSTEM),
    Action.RESOLVE: _t(_WORKING, S.RESOLVED, *_STAFF, Role.SYSTEM),
    Action.CLOSE: _t({*_WORKING, S.RESOLVED}, S.CLOSED, *_STAFF, Role.SYSTEM),
    Action.REOPEN: _t(
        {S.RESOLVED, S.CLOSED}, None, Role.CUSTOMER, Role.SYSTEM, Role.SUPERVISOR, Role.ADMIN
    ),
}


class Access(StrEnum):
    """What an agent does with a task besides moving it."""

    SEE = "see"  # show it, list it
    NOTE = "note"  # an internal note
    REPLY = "reply"  # a WhatsApp message to its customer


ACCESS: dict[Access, frozenset[Role]] = {
    Access.SEE: frozenset({Role.ASSIGNEE, Role.MEMBER, Role.SUPERVISOR, Role.ADMIN}),
    Access.NOTE: frozenset({*_STAFF, Role.CLAIMANT}),
    Access.REPLY: frozenset({*_STAFF, Role.CLAIMANT}),
}

_ACCESS_WORDS = {Access.NOTE: "add a note to", Access.REPLY: "reply on"}


def roles_of(actor: Actor, task: Task) -> frozenset[Role]:
    """The roles `actor` holds on `task`.

    A member of the task's team (any agent, for a task of no team) is a claimant while the
    task waits unassigned; the roles that act on a task are never granted across teams.
    """
    if actor.kind is ActorKind.SYSTEM:
        return frozenset({Role.SYSTEM})
    if actor.kind is ActorKind.CUSTOMER:
        return frozenset({Role.CUSTOMER})
    roles = set()
    if actor.id is not None and task.assignee_id == actor.id:
        roles.add(Role.ASSIGNEE)
    if task.team is None or task.team in actor.teams:
        roles.add(Role.MEMBER)
        if task.assignee_id is None and task.status == S.NEW:
            roles.add(Role.CLAIMANT)
    if task.team is not None and task.team in actor.supervises:
        roles.add(Role.SUPERVISOR)
    if actor.admin:
        roles.add(Role.ADMIN)
    return frozenset(roles)


def check_access(task: Task, access: Access, actor: Actor) -> None:
    """Returns when `actor` may `access` `task`; raises NotAllowed with a sentence that names
    nothing of a task the actor may not see."""
    roles = roles_of(actor, task)
    _check_visible(task, actor, roles)
    if not roles & ACCESS[access]:
        who = f"its assignee ({task.assignee_id})" if task.assignee_id else "its team"
        supervisor = f"the {task.team} supervisor" if task.team else "a supervisor"
        raise NotAllowed(f"Only {who}, {supervisor} or an admin may {_ACCESS_WORDS[access]} "
                         f"{task.ref}")


def _check_visible(task: Task, actor: Actor, roles: frozenset[Role]) -> None:
    if actor.kind is ActorKind.AGENT and not roles & ACCESS[Access.SEE]:
        raise NotAllowed(f"{task.ref} is not a task of your teams")


def visible_to(actor: Actor) -> ColumnElement[bool] | None:
    """The SQL condition of the tasks `actor` may see (`Access.SEE` as a query), or None when
    it sees every task (an admin, opsbot itself)."""
    if actor.kind is not ActorKind.AGENT or actor.admin:
        return None
    return or_(Task.team.is_(None), Task.team.in_(sorted(actor.all_teams)),
               Task.assignee_id == actor.id)


def check_transition(task: Task, action: Action, actor: Actor) -> TaskStatus:
    """The status `action` leads to. Raises IllegalTransition or NotAllowed with a sentence
    (for a task the actor may not see, NotAllowed before anything about the task)."""
    transition = TRANSITIONS[action]
    roles = roles_of(actor, task)
    _check_visible(task, actor, roles)
    if task.status not in transition.sources:
        raise IllegalTransition(_illegal_message(task, action))
    if not roles & transition.roles:
        raise NotAllowed(_not_allowed_message(task, action, transition))
    if transition.target is not None:
        return transition.target
    return S.ASSIGNED if task.assignee_id else S.NEW


def _illegal_message(task: Task, action: Action) -> str:
    status = TaskStatus(task.status)
    if status in (S.CLOSED, S.RESOLVED) and action is not Action.REOPEN:
        return f"{task.ref} is {status.value}; reopen it first"
    if action is Action.ACCEPT and status in _WORKING:
        return f"{task.ref} is already accepted by {task.assignee_id}"
    if action is Action.REOPEN:
        return f"{task.ref} is still open ({_human(status)}); there is nothing to reopen"
    allowed = _join_or(sorted(_human(s) for s in TRANSITIONS[action].sources))
    return f"{task.ref} is {_human(status)}; {action.value} works only when it is {allowed}"


def _not_allowed_message(task: Task, action: Action, transition: Transition) -> str:
    who = []
    if Role.ASSIGNEE in transition.roles:
        who.append(f"its assignee ({task.assignee_id})" if task.assignee_id else "its team")
    if Role.SUPERVISOR in transition.roles:
        who.append(f"the {task.team} supervisor" if task.team else "a supervisor")
    if Role.ADMIN in transition.roles:
        who.append("an admin")
    if not who:
        who.append("opsbot itself")
    return f"Only {_join_or(who)} may {action.value} {task.ref}"


def _human(status: TaskStatus) -> str:
    return status.value.replace("_", " ")


def _join_or(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]

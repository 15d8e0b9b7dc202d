"""The task state machine: which action moves a task from where to where, and who may do it."""

from dataclasses import dataclass, field
from enum import StrEnum

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
    """Who asks for a change; `supervises` holds the teams this agent supervises."""

    kind: ActorKind
    id: str | None = None
    supervises: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False

    @property
    def label(self) -> str:
        return self.kind.value if self.id is None else f"{self.kind.value}:{self.id}"


SYSTEM = Actor(ActorKind.SYSTEM)


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
    Action.ACCEPT: _t({S.NEW, S.ASSIGNED}, S.ACCEPTED, *_STAFF),
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


def roles_of(actor: Actor, task: Task) -> frozenset[Role]:
    """The roles `actor` holds on `task`; an unassigned task may be claimed by its team."""
    if actor.kind is ActorKind.SYSTEM:
        return frozenset({Role.SYSTEM})
    if actor.kind is ActorKind.CUSTOMER:
        return frozenset({Role.CUSTOMER})
    roles = set()
    if task.assignee_id == actor.id or (task.assignee_id is None and task.status == S.NEW):
        roles.add(Role.ASSIGNEE)
    if task.team in actor.supervises:
        roles.add(Role.SUPERVISOR)
    if actor.admin:
        roles.add(Role.ADMIN)
    return frozenset(roles)


def check_transition(task: Task, action: Action, actor: Actor) -> TaskStatus:
    """The status `action` leads to. Raises IllegalTransition or NotAllowed with a sentence."""
    transition = TRANSITIONS[action]
    if task.status not in transition.sources:
        raise IllegalTransition(_illegal_message(task, action))
    if not roles_of(actor, task) & transition.roles:
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

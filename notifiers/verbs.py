"""The agent verbs. Each handler's docstring is its help line (`help` prints them).

Handlers raise DomainError (NotFound, NotAllowed, IllegalTransition, UsageError) with a sentence
for the agent; permissions come from the store's lifecycle, never from here.
"""

from __future__ import annotations

from notifiers import listing
from notifiers.grammar import Command, Context, Handler, UsageError
from notifiers.notifications import NotificationKind, clock_time, local_time
from notifiers.queueing import queue_card_updates, queue_notification
from notifiers.texts import WHATSAPP_TEXT_LIMIT, echo, fit_whatsapp
from rules import pick_language_text, render_template
from store.contacts import reply_window_closes
from store.errors import DomainError, IllegalTransition, NotFound
from store.events import Audit, record_event
from store.lifecycle import Access, Action, check_access, check_transition
from store.models import Task
from store.outbox import queue_customer_message
from store.surveys import schedule_survey
from store.tasks import get_task, list_waiting_tasks, transition_task

WAITING_ROUTED = 50  # waiting tasks routed again when an agent frees capacity (oldest first)


def _task(context: Context, command: Command, usage: str) -> Task:
    if not command.args:
        raise UsageError(f"Usage: {usage}")
    task = get_task(context.session, ref=command.args[0])
    context.task = task
    return task


def _move(context: Context, task: Task, action: Action, past: str, reason: str | None = None,
          **changes) -> str:
    transition_task(context.session, task=task, action=action, actor=context.actor,
                    reason=reason, now=context.now, **changes)
    return _done(context, task, past)


def _done(context: Context, task: Task, past: str) -> str:
    line = f"{past} by {context.agent.name} at {clock_time(context.now, context.config)}"
    queue_card_updates(context.session, task=task, line=line, now=context.now)
    return f"{task.ref} {past[0].lower()}{past[1:]}: {task.title}"


def tasks_verb(context: Context, command: Command) -> str:
    """tasks [mine|team|open|unassigned] — list tasks (default: yours)."""
    return listing.tasks_text(context, command.args[0].lower() if command.args else "mine")


def show_verb(context: Context, command: Command) -> str:
    """show REF — a task with its latest events."""
    task = _task(context, command, "show T-12")
    check_access(task, Access.SEE, context.actor)
    return listing.show_text(context, task)


def accept_verb(context: Context, command: Command) -> str:
    """accept REF — take a task offered to you."""
    return _move(context, _task(context, command, "accept T-12"), Action.ACCEPT, "Accepted")


def decline_verb(context: Context, command: Command) -> str:
    """decline REF [reason] — hand a task back; it is offered to the next agent."""
    task = _task(context, command, "decline T-12 [reason]")
    transition_task(context.session, task=task, action=Action.DECLINE, actor=context.actor,
                    reason=command.rest(1) or None, now=context.now)
    offered = ""
    if context.assign is not None:
        result = context.assign(context.session, config=context.config, task=task,
                                now=context.now, exclude=tuple(task.declined_by))
        offered = (f" Offered to {_name(context, result.agent_id)}." if result.agent_id
                   else " Nobody else is available: it waits for the team.")
    return _done(context, task, "Declined") + offered


def start_verb(context: Context, command: Command) -> str:
    """start REF — you are working on it (also after waiting for the customer)."""
    return _move(context, _task(context, command, "start T-12"), Action.START, "Started")


def wait_verb(context: Context, command: Command) -> str:
    """wait REF — waiting for the customer to answer."""
    task = _task(context, command, "wait T-12")
    return _move(context, task, Action.WAIT, "Waiting for the customer")


def note_verb(context: Context, command: Command) -> str:
    """note REF TEXT — an internal note on the task (the customer does not see it)."""
    task = _task(context, command, "note T-12 text of the note")
    text = _text(command, "note T-12 text of the note")
    check_access(task, Access.NOTE, context.actor)
    record_event(context.session, task=task, actor=context.actor.label, action=Audit.NOTE,
                 details={"text": text}, at=context.now)
    return f"Note added to {task.ref}."


def reply_verb(context: Context, command: Command) -> str:
    """reply REF TEXT — send TEXT to the customer on WhatsApp."""
    task = _task(context, command, "reply T-12 text for the customer")
    text = _text(command, "reply T-12 text for the customer")
    check_access(task, Access.REPLY, context.actor)
    if len(text) > WHATSAPP_TEXT_LIMIT:
        raise UsageError(f"A WhatsApp message holds at most {WHATSAPP_TEXT_LIMIT:,} characters; "
                         f"yours has {len(text):,}. Send it in shorter replies.")
    if task.contact is None or not task.is_open:
        raise DomainError(f"{task.ref} has no open conversation with a customer to reply to")
    window = _outside_window_note(context, task)
    queue_customer_message(context.session, contact=task.contact, kind="reply", text=text,
                           dedupe_key=f"reply-{task.id}-{context.request_key}", task=task)
    record_event(context.session, task=task, actor=context.actor.label, action=Audit.REPLY,
                 details={"text": text}, at=context.now)
    # The first response is recorded once WhatsApp accepts the send (store.tasks.
    # record_first_response): a reply that never reaches the customer answers nothing.
    return f"Sent to the customer of {task.ref}.{window}"


def _outside_window_note(context: Context, task: Task) -> str:
    """"" inside the 24-hour customer-service window; outside it, what the reply goes as.

    Raises DomainError outside the window when rules.yaml names no template to send instead.
    """
    closes = reply_window_closes(task.contact)
    if closes is not None and context.now < closes:
        return ""
    template = context.config.out_of_window_template
    if template is not None:
        return (" Outside the 24-hour window: it will go as the approved template "
                f"`{template.name}`.")
    since = (f"the window closed {local_time(closes, context.config)}" if closes is not None
             else "the customer never wrote")
    raise DomainError(f"{task.ref} is outside the 24-hour window ({since}) and rules.yaml has "
                      "no out_of_window_template: add an approved template there, or wait "
                      "until the customer writes again.")


def close_verb(context: Context, command: Command) -> str:
    """close REF [resolution] — done; the customer gets the closing message."""
    task = _task(context, command, "close T-12 [resolution]")
    answer = _move(context, task, Action.CLOSE, "Closed", reason=command.rest(1) or None)
    _route_freed(context, task.assignee_id)
    text = _closing_text(context, task)
    if text and task.contact is not None:
        queue_customer_message(context.session, contact=task.contact, kind="closing", text=text,
                               dedupe_key=f"closing-{task.id}-{task.timer_generation}",
                               task=task)
    schedule_survey(context.session, survey=context.config.survey, task=task, now=context.now)
    return answer


def reassign_verb(context: Context, command: Command) -> str:
    """reassign REF AGENT — give a task to another agent (supervisors and admins)."""
    task = _task(context, command, "reassign T-12 agent")
    if len(command.args) < 2:
        raise UsageError("Usage: reassign T-12 agent")
    target = _agent_id(context, command.args[1])
    check_transition(task, Action.REASSIGN, context.actor)  # who may, before what it would do
    if target == task.assignee_id:  # it would only send an accepted task back to `assigned`
        raise IllegalTransition(f"{task.ref} is already assigned to {_name(context, target)}")
    previous = task.assignee_id
    transition_task(context.session, task=task, action=Action.REASSIGN, actor=context.actor,
                    assignee_id=target, now=context.now)
    generation = task.timer_generation
    queue_notification(context.session, config=context.config, kind=NotificationKind.ASSIGNED,
                       task=task, agent_id=target, dedupe_key=f"assigned-{task.id}-{generation}")
    if previous and previous != target:
        queue_notification(context.session, config=context.config, task=task,
                           kind=NotificationKind.REASSIGNED_AWAY, agent_id=previous,
                           dedupe_key=f"away-{task.id}-{generation}", details={"agent": target})
        _route_freed(context, previous)
    return _done(context, task, f"Reassigned to {_name(context, target)}")


def away_verb(context: Context, command: Command) -> str:
    """away — stop receiving new tasks."""
    listing.set_availability(context, away=True)
    return "You are away: no new tasks will be routed to you. Write `back` when you return."


def back_verb(context: Context, command: Command) -> str:
    """back — receive tasks again; waiting tasks of your teams are routed now."""
    listing.set_availability(context, away=False)
    return "Welcome back. " + listing.route_waiting(context)


def _route_freed(context: Context, agent_id: str | None) -> None:
    """`agent_id` has room again (a task of hers closed or went to someone else): the tasks
    waiting for her teams are routed through bot/'s assigner, when one was given."""
    agent = context.config.agent(agent_id) if agent_id else None
    if context.assign is None or agent is None:
        return
    for task in list_waiting_tasks(context.session, teams=agent.teams, limit=WAITING_ROUTED):
        context.assign(context.session, config=context.config, task=task, now=context.now,
                       exclude=tuple(task.declined_by))


def stats_verb(context: Context, command: Command) -> str:
    """stats — your open tasks and what you closed in the last 7 days."""
    return listing.stats_text(context)


def help_verb(context: Context, command: Command) -> str:
    """help — this list."""
    return help_text()


def help_text() -> str:
    """Every verb with its help line, from the handlers' docstrings."""
    lines = [(handler.__doc__ or verb).strip().splitlines()[0] for verb, handler in VERBS.items()]
    return "Commands:\n" + "\n".join(f"• {line}" for line in lines)


def unknown_verb_text(verb: str) -> str:
    """The answer to a verb nobody handles: the verbs there are."""
    return f"I do not know '{verb}'. Try: {', '.join(VERBS)} (or `help`)."


def _text(command: Command, usage: str) -> str:
    text = command.rest(1)
    if not text:
        raise UsageError(f"Usage: {usage}")
    return text


def _agent_id(context: Context, name: str) -> str:
    wanted = name.strip().lstrip("@").lower()
    for agent in context.config.agents:
        if wanted in (agent.id.lower(), agent.name.lower(), (agent.slack or "").lower()):
            return agent.id
    raise NotFound(f"There is no agent '{name}'; use an id from rules.yaml")


def _name(context: Context, agent_id: str | None) -> str:
    agent = context.config.agent(agent_id) if agent_id else None
    return agent.name if agent else str(agent_id)


def _closing_text(context: Context, task: Task) -> str | None:
    contact = task.contact
    language = (contact.language if contact else None) or task.language
    template = pick_language_text(context.config.closing_reply, language,
                                  context.config.default_language)
    if not template:
        return None
    values = {"contact.name": echo(contact.name) if contact else None,
              "task.number": task.number, "task.ref": task.ref, "task.title": task.title,
              "agent.name": context.agent.name}
    return fit_whatsapp(render_template(template, values))


VERBS: dict[str, Handler] = {
    "tasks": tasks_verb,
    "show": show_verb,
    "accept": accept_verb,
    "decline": decline_verb,
    "start": start_verb,
    "wait": wait_verb,
    "note": note_verb,
    "reply": reply_verb,
    "close": close_verb,
    "reassign": reassign_verb,
    "away": away_verb,
    "back": back_verb,
    "stats": stats_verb,
    "help": help_verb,
}

READING_VERBS = frozenset({"tasks", "show", "stats", "help"})  # they change nothing

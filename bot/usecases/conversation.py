"""Applying one customer message: contact, rules, then a new task or the open one.

Called inside the caller's transaction; nothing here commits or talks to the network.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from bot.usecases.assignment import assign_task, notify_agent
from bot.usecases.lateness import check_arrival, mark_arrived_late
from bot.usecases.surveys import (
    answer_by_text,
    rated_details,
    read_button_answer,
    record_button_answer,
    take_comment,
    thank,
)
from bot.whatsapp.parsing import DeliveryStatus, InboundMessage
from notifiers.texts import echo, fit_whatsapp
from rules import (
    AgentState,
    ContactFacts,
    Decision,
    HistoryFacts,
    MessageFacts,
    RoutingResult,
    RulesConfig,
    due_times,
    evaluate,
    pick_language_text,
    render_template,
)
from rules.eta import describe_due
from rules.recording import record_agents, record_facts, record_outcome
from store.agents import get_agent_states
from store.contacts import note_inbound, upsert_contact
from store.decisions import record_decision
from store.events import Audit, record_event
from store.lifecycle import Action, customer_actor
from store.messages import apply_status, record_inbound_message
from store.models import Contact, DecisionEffect, Message, Task, TaskStatus
from store.outbox import queue_customer_message
from store.tasks import CustomerTasks, create_task, find_customer_tasks, transition_task

_CLOSED = (TaskStatus.RESOLVED, TaskStatus.CLOSED)


class MessageOutcome(StrEnum):
    """What a customer message did."""

    DUPLICATE = "duplicate"  # seen before: nothing done
    THREADED = "threaded"  # added to the customer's open task
    RATED = "rated"  # a satisfaction rating: a survey button, or a text after the closing
    COMMENTED = "commented"  # a comment on the survey the customer just answered
    REOPENED = "reopened"  # reopened the customer's recently closed task
    RECORDED = "recorded"  # ignored, or a reaction: kept (on a recently closed task, not reopened)
    CREATED = "created"  # a new task


def apply_message(session: Session, *, config: RulesConfig, message: InboundMessage,
                  now: datetime) -> MessageOutcome:
    """Records the message and acts on it; returns what happened. A message whose fate the
    rules decided (a new task, ignored, a reopening) records that decision for replay; the
    answer to a satisfaction survey and its comment are no such decision."""
    contact, created = upsert_contact(session, wa_id=message.wa_id, user_id=message.user_id,
                                      name=message.name, now=message.at)
    # A customer created just now has no tasks: nothing to look up.
    tasks = CustomerTasks() if created else find_customer_tasks(session, contact_id=contact.id)
    stored = record_inbound_message(
        session, provider_message_id=message.wamid, contact_id=contact.id, type=message.type,
        text=message.text, media_id=message.media_id, payload=_payload(message), at=message.at,
        task_id=tasks.open.id if tasks.open is not None else None)  # threaded below
    if stored is None:
        return MessageOutcome.DUPLICATE
    answer = (read_button_answer(session, message=message, contact=contact)
              if message.button_payload and not created else None)
    if answer is not None:  # on the rated task, whether it is open, closed or older
        note_inbound(contact, at=message.at, phone_id=message.phone_id)
        record_button_answer(session, config=config, answer=answer, stored=stored,
                             contact=contact, at=message.at, now=now)
        return MessageOutcome.RATED
    return _act(session, config, message, contact, tasks, stored, now)


def _act(session: Session, config: RulesConfig, message: InboundMessage, contact: Contact,
         tasks: CustomerTasks, stored: Message, now: datetime) -> MessageOutcome:
    facts = _Facts(message.facts(), _contact_facts(contact),
                   _history(contact, tasks, message.at), at=message.at)
    decision = evaluate(config, message=facts.message, contact=facts.contact,
                        history=facts.history, now=message.at)
    note_inbound(contact, at=message.at, phone_id=message.phone_id)
    contact.language = contact.language or decision.language
    if tasks.open is not None:
        _thread(session, config, tasks.open, stored, contact, now)
        return MessageOutcome.THREADED
    task = _reopenable(config, tasks.last, message.at)
    answered = _answered(session, config, message, tasks.last, task, stored, contact, now)
    if answered is not None:
        return answered
    if message.type == "reaction" or decision.ignore:
        _keep_on_closed(session, task, stored, contact, now)
        if message.type != "reaction":
            _record(session, config, facts, decision, stored, DecisionEffect.IGNORED, task=task)
        return MessageOutcome.RECORDED
    if task is not None:
        _reopen(session, config, task, stored, contact, now)
        _record(session, config, facts, decision, stored, DecisionEffect.REOPENED, task=task)
        return MessageOutcome.REOPENED
    _open_task(session, config, facts, decision, stored, contact, message, now)
    return MessageOutcome.CREATED


def _answered(session: Session, config: RulesConfig, message: InboundMessage, last: Task | None,
              task: Task | None, stored: Message, contact: Contact,
              now: datetime) -> MessageOutcome | None:
    # A rating first: "5" or "⭐⭐⭐" answers "how did we do?" even where a rule ignores it.
    rating = read_rating(stored.text or "") if message.type != "reaction" else None
    if task is not None and rating is not None and task.rating is None:
        _rate(session, config, task, stored, contact, rating, message.at, now)
        return MessageOutcome.RATED
    # Then a comment on a survey just answered: the customer explains, asks for nothing new.
    if last is not None and take_comment(session, config=config, message=message,
                                         stored=stored, contact=contact, now=now):
        return MessageOutcome.COMMENTED
    return None


@dataclass(frozen=True)
class _Facts:
    """What the rules were evaluated on, and when."""

    message: MessageFacts
    contact: ContactFacts
    history: HistoryFacts
    at: datetime


def _record(session: Session, config: RulesConfig, facts: _Facts, decision: Decision,
            stored: Message, effect: DecisionEffect, *, task: Task | None,
            due: tuple[datetime, datetime] | None = None, routing: RoutingResult | None = None,
            agents: Mapping[str, AgentState] | None = None) -> None:
    record_decision(
        session, message_id=stored.id, contact_id=stored.contact_id,
        task_id=task.id if task is not None else None, at=facts.at,
        rules_sha256=config.sha256, effect=effect,
        facts=record_facts(facts.message, facts.contact, facts.history,
                           language=decision.language),
        contact_tags=list(facts.contact.tags),
        outcome=record_outcome(decision, due=due, routing=routing),
        agents=record_agents(agents) if agents is not None else None)


def _payload(message: InboundMessage) -> dict[str, Any]:
    payload = dict(message.details)
    payload.update(parsed_by=message.parsed_by)
    for key in ("button_payload", "reaction_to"):
        if getattr(message, key):
            payload[key] = getattr(message, key)
    return payload


def _contact_facts(contact: Contact) -> ContactFacts:
    return ContactFacts(name=contact.name, status=contact.crm_status or "lead",
                        language=contact.language, tags=tuple(contact.tags or ()))


def _history(contact: Contact, tasks: CustomerTasks, at: datetime) -> HistoryFacts:
    days = None
    if contact.last_inbound_at is not None:
        days = max((at - contact.last_inbound_at).total_seconds(), 0) / 86400
    last = tasks.last
    return HistoryFacts(task_count=tasks.count, open_task=bool(last and last.is_open),
                        last_category=last.category if last else None,
                        days_since_last_contact=days)


def _thread(session: Session, config: RulesConfig, task: Task, stored: Message,
            contact: Contact, now: datetime) -> None:
    stored.task_id = task.id
    record_event(session, task=task, actor=customer_actor(contact.id).label, action=Audit.MESSAGE,
                 details={"message_id": stored.id, "type": stored.type,
                          "text": (stored.text or "")[:1000]}, at=now)
    if task.status == TaskStatus.WAITING_CUSTOMER:
        transition_task(session, task=task, action=Action.RESUME, actor=customer_actor(contact.id),
                        reason="the customer answered", now=now)
    if task.assignee_id:
        notify_agent(session, config=config, kind="follow_up", task=task,
                     agent_id=task.assignee_id, dedupe_key=f"follow_up:{stored.id}",
                     details={"text": stored.text}, new_key=True)  # stored just now


def _reopenable(config: RulesConfig, last: Task | None, at: datetime) -> Task | None:
    if last is None or last.status not in _CLOSED:
        return None
    ended = last.closed_at or last.resolved_at or last.updated_at
    return last if ended >= at - config.reopen_within else None


def _keep_on_closed(session: Session, task: Task | None, stored: Message, contact: Contact,
                    now: datetime) -> None:
    # A courtesy ("¡Muchas gracias por todo!") or a reaction after the closing belongs to
    # that conversation: kept on the task's trail, but it reopens and notifies nothing.
    if task is None:
        return
    stored.task_id = task.id
    record_event(session, task=task, actor=customer_actor(contact.id).label, action=Audit.MESSAGE,
                 details={"message_id": stored.id, "type": stored.type,
                          "text": (stored.text or "")[:1000], "reopened": False}, at=now)


_RATING = re.compile(r"^\s*([1-5])\s*(?:/\s*5)?\s*[.!]?\s*$|^\s*((?:⭐\ufe0f?){1,5})\s*$")


def read_rating(text: str) -> int | None:
    """The satisfaction rating in a reply to the closing message ("4", "5/5", "⭐⭐⭐"), or
    None when the text is anything else."""
    match = _RATING.match(text)
    if match is None:
        return None
    return int(match.group(1)) if match.group(1) else match.group(2).count("⭐")


def _rate(session: Session, config: RulesConfig, task: Task, stored: Message, contact: Contact,
          rating: int, at: datetime, now: datetime) -> None:
    # A lone 1-5 right after a closing asks for nothing new: it answers "how did we do?" (and
    # the task's survey, sent or still to send).
    stored.task_id = task.id
    task.rating = rating
    survey = answer_by_text(session, config=config, task=task, score=rating, at=at)
    record_event(session, task=task, actor=customer_actor(contact.id).label, action=Audit.RATED,
                 details=rated_details(survey, stored, rating), at=now)
    if survey is not None:
        thank(session, config=config, survey=survey, task=task, contact=contact)


def _reopen(session: Session, config: RulesConfig, task: Task, stored: Message,
            contact: Contact, now: datetime) -> None:
    # The SLA starts again from the reopening: the old due times may be long past. The first
    # response already made stays the task's first response.
    sla = task.sla_policy if task.sla_policy in config.sla else None
    first_due, resolution_due = due_times(config, priority=task.priority, start=now, sla=sla)
    transition_task(session, task=task, action=Action.REOPEN, actor=customer_actor(contact.id),
                    reason="the customer wrote again", now=now,
                    details={"first_response_due": first_due.isoformat(),
                             "resolution_due": resolution_due.isoformat()})
    task.first_response_due, task.resolution_due = first_due, resolution_due
    _thread(session, config, task, stored, contact, now)
    if task.assignee_id is None:
        assign_task(session, config=config, task=task, now=now, message=stored)


def _open_task(session: Session, config: RulesConfig, facts: _Facts, decision: Decision,
               stored: Message, contact: Contact, message: InboundMessage, now: datetime) -> Task:
    start = min(message.at, now)
    first_due, resolution_due = due_times(config, priority=decision.priority, start=start,
                                          sla=decision.sla)
    late = check_arrival(session, team=decision.team, sent_at=message.at, now=now,
                         first_response_due=first_due, resolution_due=resolution_due)
    rules = [{"rule": m.name, "reasons": list(m.reasons)} for m in decision.matched]
    task = create_task(
        session, title=decision.title, category=decision.category,
        priority=str(decision.priority), actor=customer_actor(contact.id), contact_id=contact.id,
        details={"message_id": stored.id, "matched": rules}, now=now,
        tags=list(decision.tags), team=decision.team, skills=list(decision.skills),
        stage=decision.stage, rule=decision.matched[0].name if decision.matched else None,
        language=decision.language or contact.language or config.default_language,
        sla_policy=decision.sla, first_response_due=first_due, resolution_due=resolution_due,
        late_summary_at=late.summary_at if late else None,
    )
    if late is not None:  # a backlog: marked once, summarised per team, not escalated
        mark_arrived_late(session, task=task, late=late)
    stored.task_id = task.id
    agents = get_agent_states(session)  # as routing sees them, before it changes them
    routing = assign_task(session, config=config, task=task, now=now, new_task=True,
                          message=stored)
    _record(session, config, facts, decision, stored, DecisionEffect.CREATED, task=task,
            due=(first_due, resolution_due), routing=routing, agents=agents)
    _acknowledge(session, config, decision, task, contact, message)
    return task


def _acknowledge(session: Session, config: RulesConfig, decision: Decision, task: Task,
                 contact: Contact, message: InboundMessage) -> None:
    template = pick_language_text(decision.reply, task.language, config.default_language)
    if not template:
        return
    text = fit_whatsapp(render_template(template, reply_values(config, task, contact, message)))
    queue_customer_message(session, contact=contact, kind="ack", text=text,
                           dedupe_key=f"ack:{task.id}", task=task, new_key=True)


def reply_values(config: RulesConfig, task: Task, contact: Contact,
                 message: InboundMessage | None = None, *,
                 now: datetime | None = None) -> dict[str, Any]:
    """The `{contact.*}`, `{task.*}`, `{sla.*}`, `{agent.*}`, `{message.*}` values of a customer
    reply; what the customer wrote is echoed at most ECHO_LIMIT characters long. The `*_eta`
    values say when each deadline falls as seen at `now` (default: the task's creation, the
    moment of its acknowledgement)."""
    policy = config.policy(task.sla_policy or task.priority)
    agent = config.agent(task.assignee_id) if task.assignee_id else None
    return {
        "contact": {"name": echo(contact.name), "status": contact.crm_status,
                    "language": contact.language, "phone": contact.phone},
        "task": {"number": task.number, "ref": task.ref, "title": task.title,
                 "category": task.category, "priority": task.priority, "team": task.team},
        "sla": {"first_response": policy.first_response, "resolution": policy.resolution,
                **_etas(config, task, policy.business_hours, now or task.created_at)},
        "agent": {"name": agent.name if agent else ""},
        "message": {"text": echo(message.text if message else ""),
                    "type": message.type if message else ""},
    }


def _etas(config: RulesConfig, task: Task, business_hours: bool,
          now: datetime) -> dict[str, str]:
    language = task.language or config.default_language
    dues = {"first_response_eta": task.first_response_due,
            "resolution_eta": task.resolution_due}
    return {name: describe_due(due, now=now, calendar=config.calendar, language=language,
                               business_hours=business_hours) if due else ""
            for name, due in dues.items()}


def apply_status_update(session: Session, *, status: DeliveryStatus, now: datetime) -> bool:
    """Applies a delivery status to our outbound message; a failure becomes an audit event on
    the task. Returns False when no outbound message has this id."""
    message = apply_status(session, provider_message_id=status.wamid, status=status.status,
                           error=status.error)
    if message is None:
        return False
    if status.status == "failed" and message.task_id is not None:
        task = session.get(Task, message.task_id)
        record_event(session, task=task, actor="whatsapp", action=Audit.DELIVERY_FAILED,
                     details={"message_id": message.id, "wamid": status.wamid,
                              "error": status.error}, at=now)
    return True

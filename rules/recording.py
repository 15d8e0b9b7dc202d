"""A rules decision as it is recorded, so that another rules file can be evaluated on the same
facts later (`rules.replay`): plain JSON values in, the evaluation's inputs back out.

What the customer wrote (the text, a Flow's answers) and their tags are not part of the
recorded facts: the caller keeps them where customer data is kept and hands them back, or
None when they are gone (the customer was erased)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rules.engine import Decision
from rules.enums import MessageType
from rules.facts import ContactFacts, HistoryFacts, MessageFacts
from rules.routing import AgentState, RoutingResult


@dataclass(frozen=True)
class Recorded:
    """The inputs of one evaluation, read back: `text_known` is False when the text was
    erased (evaluated as empty), `tags_known` when the tags were."""

    message: MessageFacts
    contact: ContactFacts
    history: HistoryFacts
    text_known: bool
    tags_known: bool


def record_facts(message: MessageFacts, contact: ContactFacts, history: HistoryFacts, *,
                 language: str | None) -> dict[str, Any]:
    """The facts of an evaluation but the customer's words and tags, as JSON values;
    `language` is the message language the evaluation settled on."""
    return {
        "type": str(message.type), "language": language, "referral": message.referral,
        "button_payload": message.button_payload, "flow_name": message.flow_name,
        "status": contact.status, "contact_language": contact.language,
        "history": {"task_count": history.task_count, "open_task": history.open_task,
                    "last_category": history.last_category,
                    "days": history.days_since_last_contact},
    }


def read_facts(facts: Mapping[str, Any], *, text: str | None,
               flow_fields: Mapping[str, Any] | None, tags: list[str] | None) -> Recorded:
    """The evaluation inputs of recorded `facts`, with the customer's words and tags (None:
    erased)."""
    past = facts.get("history") or {}
    message = MessageFacts(
        text=text or "", type=MessageType(facts.get("type") or MessageType.text),
        language=facts.get("language"), referral=facts.get("referral"),
        button_payload=facts.get("button_payload"), flow_name=facts.get("flow_name"),
        flow_fields=dict(flow_fields or {}))
    contact = ContactFacts(status=facts.get("status") or "lead",
                           language=facts.get("contact_language"), tags=tuple(tags or ()))
    history = HistoryFacts(task_count=past.get("task_count", 0),
                           open_task=bool(past.get("open_task")),
                           last_category=past.get("last_category"),
                           days_since_last_contact=past.get("days"))
    return Recorded(message, contact, history, text_known=text is not None,
                    tags_known=tags is not None)


def record_outcome(decision: Decision, *, due: tuple[datetime, datetime] | None = None,
                   routing: RoutingResult | None = None) -> dict[str, Any]:
    """What an evaluation decided, as JSON values: the rules' verdict, the SLA deadlines of
    the task it created (`due`), and routing's choice."""
    return {
        "matched": [match.name for match in decision.matched], "ignore": decision.ignore,
        "category": decision.category, "priority": str(decision.priority),
        "tags": list(decision.tags), "team": decision.team, "skills": list(decision.skills),
        "sla": decision.sla, "stage": decision.stage,
        "first_response_due": due[0].isoformat() if due else None,
        "resolution_due": due[1].isoformat() if due else None,
        "agent": routing.agent_id if routing else None,
        "routing": routing.summary if routing else None,
    }


def record_agents(states: Mapping[str, AgentState]) -> dict[str, list]:
    """Routing's view of the agents, as JSON values: id → [away, open tasks, last assigned]."""
    return {agent_id: [state.away, state.open_tasks,
                       state.last_assigned_at.isoformat() if state.last_assigned_at else None]
            for agent_id, state in states.items()}


def read_agents(recorded: Mapping[str, list] | None) -> dict[str, AgentState]:
    """The agents' routing states of `record_agents`' values."""
    return {agent_id: AgentState(agent_id, away=bool(away), open_tasks=int(open_tasks),
                                 last_assigned_at=datetime.fromisoformat(last) if last else None)
            for agent_id, (away, open_tasks, last) in (recorded or {}).items()}

"""The recorded rules decisions (`rule_decisions`): written as messages are applied, read by
`opsbot rules replay`."""

from bisect import bisect_left
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Text, func, insert, select, type_coerce
from sqlalchemy.orm import Session

from rules.replay import CREATED, RecordedDecision
from store import crypto
from store.crypto import load_keys
from store.models import Message, RuleDecision, Task


def record_decision(session: Session, *, message_id: int, contact_id: int | None,
                    task_id: int | None, at: datetime, rules_sha256: str, effect: str,
                    facts: dict[str, Any], contact_tags: list[str],
                    outcome: dict[str, Any], agents: dict[str, Any] | None = None) -> None:
    """Records one decision (one plain INSERT: nothing reads it back in this transaction)."""
    session.connection().execute(insert(RuleDecision), {
        "message_id": message_id, "contact_id": contact_id, "task_id": task_id, "at": at,
        "rules_sha256": rules_sha256, "effect": effect, "facts": facts,
        "contact_tags": contact_tags, "outcome": outcome, "agents": agents})


READ_BATCH = 2000  # decisions per fetch: one look-up of their customers' keys per batch


def read_decisions(session: Session, *, since: datetime,
                   until: datetime) -> Iterator[RecordedDecision]:
    """The decisions evaluated in [since, until), oldest first, streamed in batches, with the
    message's text and Flow answers (None for an erased customer: their tags are gone), the
    agent of the customer's latest task before the decision's (sticky routing) and, for a
    created task, when it was created (and routed)."""
    query = (
        select(RuleDecision.id, RuleDecision.message_id, RuleDecision.contact_id,
               RuleDecision.task_id, RuleDecision.at, RuleDecision.effect, RuleDecision.facts,
               RuleDecision.outcome, RuleDecision.agents, RuleDecision.contact_tags,
               # Sealed as stored: opened below once the batch's keys are loaded in one query.
               type_coerce(Message.text, Text).label("sealed_text"),
               type_coerce(Message.payload, Text).label("sealed_payload"),
               Task.created_at.label("routed_at"))
        .join(Message, Message.id == RuleDecision.message_id)
        .outerjoin(Task, Task.id == RuleDecision.task_id)
        .where(RuleDecision.at >= since, RuleDecision.at < until)
        .order_by(RuleDecision.at, RuleDecision.id)
        .execution_options(yield_per=READ_BATCH))
    assignees = _assignees(session, since=since, until=until)
    for rows in session.execute(query).partitions():
        load_keys(crypto.key_of(row.sealed_text) for row in rows
                  if crypto.is_sealed(row.sealed_text))
        for row in rows:
            yield _recorded(row, _previous(assignees, row.contact_id, row.task_id))


Assignees = dict[int, tuple[list[int], list[str]]]  # customer -> (task ids, their agents)


def _assignees(session: Session, *, since: datetime, until: datetime) -> Assignees:
    """The assigned tasks of the period's customers, by id: one query, where a correlated
    look-up per decision made PostgreSQL walk the tasks' primary key backwards."""
    customers = select(RuleDecision.contact_id).where(RuleDecision.at >= since,
                                                      RuleDecision.at < until)
    query = (select(Task.contact_id, Task.id, Task.assignee_id)
             .where(Task.assignee_id.is_not(None), Task.contact_id.in_(customers))
             .order_by(Task.contact_id, Task.id))
    found: Assignees = {}
    for contact_id, task_id, agent_id in session.execute(query):
        ids, agents = found.setdefault(contact_id, ([], []))
        ids.append(task_id)
        agents.append(agent_id)
    return found


def _previous(assignees: Assignees, contact_id: int | None, task_id: int | None) -> str | None:
    """The agent of the customer's latest task before `task_id` that had one (sticky)."""
    ids, agents = assignees.get(contact_id, ((), ())) if task_id is not None else ((), ())
    before = bisect_left(ids, task_id) if ids else 0
    return agents[before - 1] if before else None


def _recorded(row: Row, last_agent: str | None) -> RecordedDecision:
    erased = row.contact_tags is None
    flow = None
    if not erased and row.facts.get("type") == "flow":  # the only type with Flow answers
        flow = (crypto.open_json(row.sealed_payload) or {}).get("flow") or {}
    return RecordedDecision(
        id=row.id, at=row.at, effect=row.effect, facts=row.facts, outcome=row.outcome,
        agents=row.agents, text=None if erased else _text(row.sealed_text),
        flow_fields=None if flow is None else flow.get("fields") or {},
        tags=row.contact_tags, last_agent=last_agent,
        routed_at=row.routed_at if row.effect == CREATED else None, message_id=row.message_id,
        contact_id=row.contact_id, task_id=row.task_id)


def _text(sealed: str | None) -> str | None:
    """The text of a stored value: "" for none, None when its key was destroyed."""
    if sealed is None or not crypto.is_sealed(sealed):
        return sealed or ""
    plain, _ = crypto.open_sealed(sealed)
    return None if plain is None else plain.decode()


def split_period(session: Session, *, since: datetime, until: datetime, parts: int,
                 smallest: int) -> list[datetime]:
    """The instants that cut the decisions of [since, until) into at most `parts`
    consecutive parts of about the same size, none under `smallest` decisions (none: the
    period stays whole)."""
    in_period = (RuleDecision.at >= since, RuleDecision.at < until)
    count = session.scalar(select(func.count()).select_from(RuleDecision).where(*in_period))
    parts = min(parts, (count or 0) // max(smallest, 1))
    instants = select(RuleDecision.at).where(*in_period).order_by(RuleDecision.at).limit(1)
    cuts = (session.scalar(instants.offset(count * part // parts))
            for part in range(1, parts))
    return sorted({cut for cut in cuts if cut is not None and cut > since})

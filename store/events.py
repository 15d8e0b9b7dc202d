"""The audit trail: every change of a task is written here, in the caller's transaction.

The events of one task form a hash chain (those of no task form the "system" chain): each
event carries the hash of the chain's previous event and its own, an HMAC keyed with the
audit key over what is stored, so that an edit, a deletion, a swap or a forged row shows
(`store.audit.verify_audit`).
"""

import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import Insert, Integer, Select, Update, bindparam, case, insert, or_, select, text
from sqlalchemy.orm import Session, object_session
from sqlalchemy.orm.attributes import set_committed_value

from store import keys
from store.contacts import data_key_of
from store.crypto import seal_text
from store.lifecycle import Action
from store.models import Task, TaskEvent, TaskStatus
from store.rows import per_transaction
from store.types import UTCDateTime, utcnow
from store.webhooks import queue_for_event

SYSTEM_CHAIN = "system"  # the chain of the events of no task
AUDIT_LOCKS = 7_246_002  # pg_advisory_xact_lock(AUDIT_LOCKS, task id or 0): one per chain


class Audit(StrEnum):
    """Audit actions that are not state transitions (those are named by lifecycle.Action)."""

    CREATED = "created"
    ROUTED = "routed"  # details: agent, summary, candidates, automatic
    UNROUTED = "unrouted"  # nobody available: waiting for the team
    MESSAGE = "message"  # a customer message threaded into the task
    NOTE = "note"
    REPLY = "reply"  # an agent's reply relayed to the customer
    REMINDER = "reminder"  # details: kind (first_response|resolution), percent
    ESCALATED = "escalated"  # details: step (notify_supervisor|reassign|raise_priority)
    OFFER_EXPIRED = "offer_expired"  # not accepted within unaccepted_after
    SLA_RESUMED = "sla_resumed"  # the customer answered: due times pushed by the pause
    ARRIVED_LATE = "arrived_late"  # a deadline had passed before the message reached us;
    # details: reason, sent_at, received_at, missed (deadline -> due), summary_at
    DELIVERY_FAILED = "delivery_failed"
    RATED = "rated"  # details: rating (1-5)
    DENIED = "denied"  # an unknown user or a refused command
    MESSAGE_EDITED = "message_edited"  # details: message_id, text, previous
    MESSAGE_DELETED = "message_deleted"  # the customer deleted a message: details: message_id
    CONTACT_CHANGED = "contact_changed"  # a new number: details: old_wa_id, new_wa_id
    WHATSAPP_ERROR = "whatsapp_error"  # no task: Meta reported an error (code, title, details)
    RETENTION = "retention"  # no task: details: purged_tasks (their chains were deleted)
    AUDIT_VERIFIED = "audit_verified"  # no task: details: ok, events, problems


def record_event(
    session: Session,
    *,
    task: Task | None,
    actor: str,
    action: str,
    from_status: str | None = None,
    to_status: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Appends an audit event (the only writer of task_events) to its task's chain; `task`
    must be in the database already (it is once it has an id).

    The row is written at once with a plain INSERT: events are never changed afterwards, and
    the ORM's unit of work would cost several times more per event. The task's fact is kept
    before the chain's head is looked up: that look-up flushes the task, so a task the event's
    change left dirty takes the fact in that UPDATE rather than in one more.
    """
    task_id = task.id if task is not None else None
    stored = encode_details(details or {}, task=task)
    at = at or utcnow()
    if task_id is not None:
        note_task_fact(session, task=task, actor=actor, action=action, details=details or {},
                       at=at)
    prev_hash = _chain_head(session, task_id)
    own = event_hash(task_id=task_id, actor=actor, action=action, from_status=from_status,
                     to_status=to_status, details_text=stored, at=at, prev_hash=prev_hash)
    values = {"task_id": task_id, "actor": actor, "action": action, "from_status": from_status,
              "to_status": to_status, "details": stored, "at": at, "prev_hash": prev_hash,
              "hash": own}
    inserted = session.connection().execute(_insert_event(), values)
    _heads(session)[task_id] = own
    queue_for_event(session, task=task, actor=actor, action=action, from_status=from_status,
                    to_status=to_status, details=details or {}, at=at,
                    event_id=inserted.inserted_primary_key[0])


# The facts of a task's audit trail the KPIs read (store.kpis), kept on the task as its events
# are written: the first automatic routing, the first step of a person (creation, assignment,
# reassignment), the first acceptance, the latest rating. Each is the earliest (the latest) of
# its events, so the order events are written in does not matter.
MANUAL_STEPS = (Audit.CREATED, Action.ASSIGN, Action.REASSIGN)  # when the actor is a person
RATINGS = range(1, 6)  # store.reports.RATING_SCALE (reports reads this module)


def task_fact(*, actor: str, action: str, details: dict[str, Any]) -> str | None:
    """The Task column an event sets (store.reports.is_automated and _satisfaction read the
    same events), or None."""
    if action == Action.ACCEPT:
        return "first_accepted_at"
    if action == Audit.ROUTED and details.get("automatic") is True:
        return "auto_routed_at"
    if action in MANUAL_STEPS and actor.startswith("agent:"):
        return "manual_step_at"
    return "last_rated_at" if action == Audit.RATED else None


def rating_of(details: dict[str, Any]) -> int | None:
    """The rating of a `rated` event, None when it is not one of 1-5 (reports skips it)."""
    rating = details.get("rating")
    return rating if type(rating) is int and rating in RATINGS else None


def note_task_fact(session: Session, *, task: Task, actor: str, action: str,
                   details: dict[str, Any], at: datetime) -> None:
    """Keeps the fact an event is (if any) on its task. A task the event's change left dirty
    (a transition, a rating) takes it in the UPDATE it is about to get; otherwise a plain
    UPDATE, which leaves the task's version alone (nothing a person changed), and the loaded
    task is told the value without becoming dirty (a later flush must not undo it)."""
    fact = task_fact(actor=actor, action=action, details=details)
    if fact is None:
        return
    rating = rating_of(details)
    loaded = task in session
    if loaded and session.is_modified(task):
        _keep_on(task, fact, at, rating, setattr)
        return
    session.connection().execute(_note_fact(fact), {"fact_task": task.id, "fact_at": at,
                                                    "fact_rating": rating})
    if loaded:
        _keep_on(task, fact, at, rating, set_committed_value)


def _keep_on(task: Task, fact: str, at: datetime, rating: int | None, put) -> None:
    """`_note_fact` on the loaded task (the earliest instant, the latest rating), each value
    written with `put(task, name, value)`."""
    if fact == "last_rated_at":
        if task.last_rated_at is None or task.last_rated_at <= at:
            put(task, "last_rated_at", at)
            put(task, "last_rating", rating)
    elif getattr(task, fact) is None or getattr(task, fact) > at:
        put(task, fact, at)


@cache
def _note_fact(fact: str) -> Update:
    tasks = Task.__table__
    at = bindparam("fact_at", type_=UTCDateTime())
    if fact == "last_rated_at":
        later = or_(tasks.c.last_rated_at.is_(None), tasks.c.last_rated_at <= at)
        values = {"last_rated_at": case((later, at), else_=tasks.c.last_rated_at),
                  "last_rating": case((later, bindparam("fact_rating", type_=Integer())),
                                      else_=tasks.c.last_rating)}
    else:
        column = tasks.c[fact]
        values = {fact: case((or_(column.is_(None), column > at), at), else_=column)}
    return tasks.update().where(tasks.c.id == bindparam("fact_task")).values(values)


# Details that may hold what a customer wrote or what was written to or about them: each is
# sealed with the customer's data key (the task's contact), so that erasing the customer makes
# them unreadable while the rest (statuses, agents, ratings: the KPIs' figures) stays.
PERSONAL_DETAILS = frozenset({"text", "previous", "note", "reason", "resolution", "comment",
                              "title", "name", "old_wa_id", "new_wa_id"})


def encode_details(details: dict[str, Any], *, task: Task | None) -> str:
    """The text stored (and hashed) for an event's `details`: canonical JSON, with the
    PERSONAL_DETAILS sealed with the data key of `task`'s customer."""
    if any(key in PERSONAL_DETAILS and isinstance(value, str) for key, value in details.items()):
        key_id = _data_key(task)
        details = {key: seal_text(value, key_id)
                   if key in PERSONAL_DETAILS and isinstance(value, str) else value
                   for key, value in details.items()}
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _data_key(task: Task | None) -> str | None:
    session = object_session(task) if task is not None else None
    if session is None:
        return None
    return data_key_of(session, contact_id=task.contact_id)


def event_hash(*, task_id: int | None, actor: str, action: str, from_status: str | None,
               to_status: str | None, details_text: str, at: datetime,
               prev_hash: str | None) -> str:
    """An event's hash (hex HMAC-SHA256 with the audit key) over its stored fields and the
    hash of its chain's previous event; raises KeysError when no keys are configured."""
    at_iso = at.astimezone(UTC).isoformat(timespec="microseconds")
    fields = [task_id, actor, action, from_status, to_status, details_text, at_iso, prev_hash]
    return keyed_hash(json.dumps(fields, separators=(",", ":"), ensure_ascii=False))


def keyed_hash(canonical: str) -> str:
    """The hex HMAC-SHA256 of `canonical` with the audit key."""
    return hmac.digest(keys.current().audit, canonical.encode(), "sha256").hex()


def chain_key(task_id: int | None) -> str:
    """How reports and anchors name a chain: `T-<id>`, or `system` for no task."""
    return SYSTEM_CHAIN if task_id is None else f"T-{task_id}"


def lock_chain(session: Session, chain: int | None) -> None:
    """Holds a chain (a task id, None for the system chain) until the transaction ends
    (PostgreSQL: two transactions appending to one chain would fork it; SQLite has one
    writer already)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:space, :chain)"),
                        {"space": AUDIT_LOCKS, "chain": chain or 0})


def start_chain(session: Session, *, task_id: int) -> None:
    """Says that task `task_id` was created in this transaction: its chain is empty (no look
    for its head; no other transaction can see the task, so none can append to it)."""
    _heads(session)[task_id] = None


def _chain_head(session: Session, task_id: int | None) -> str | None:
    heads = _heads(session)
    if task_id not in heads:
        lock_chain(session, task_id)
        params = {} if task_id is None else {"task_id": task_id}
        heads[task_id] = session.scalar(_head_query(task_id is None), params)
    return heads[task_id]


def _heads(session: Session) -> dict[int | None, str | None]:
    """The hash of each chain's last event, as this transaction wrote or read it (nothing
    rolled back, nor another transaction's appends once this one ended, is taken for one)."""
    return per_transaction(session, "audit_heads")


@cache
def _head_query(system: bool) -> Select:
    chain = TaskEvent.task_id.is_(None) if system else TaskEvent.task_id == bindparam("task_id")
    return select(TaskEvent.hash).where(chain).order_by(TaskEvent.id.desc()).limit(1)


@cache
def _insert_event() -> Insert:
    return insert(TaskEvent.__table__)


def list_events_after(session: Session, *, after: int, limit: int) -> list[TaskEvent]:
    """Up to `limit` audit events after id `after`, of every chain, in id order."""
    query = select(TaskEvent).where(TaskEvent.id > after).order_by(TaskEvent.id).limit(limit)
    return list(session.scalars(query))


def list_events(session: Session, *, task_id: int, action: str | None = None) -> list[TaskEvent]:
    """The audit events of one task (only those of `action` when given), oldest first."""
    query = select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.id)
    if action is not None:
        query = query.where(TaskEvent.action == action)
    return list(session.scalars(query))


def list_wait_events(session: Session, *, task_ids: Sequence[int]) -> dict[int, list[TaskEvent]]:
    """Per task of `task_ids`, oldest first: its transitions into and out of
    waiting_customer and its `sla_resumed` settlements (what settling a pause reads)."""
    waits = or_(TaskEvent.to_status == TaskStatus.WAITING_CUSTOMER,
                TaskEvent.from_status == TaskStatus.WAITING_CUSTOMER,
                TaskEvent.action == Audit.SLA_RESUMED)
    query = (select(TaskEvent).where(TaskEvent.task_id.in_(list(task_ids)), waits)
             .order_by(TaskEvent.id))
    found: dict[int, list[TaskEvent]] = {}
    for event in session.scalars(query):
        found.setdefault(event.task_id, []).append(event)
    return found

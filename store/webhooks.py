"""Outgoing webhooks (Standard Webhooks): the CRM's endpoints, and one delivery per event and
endpoint, written in the transaction of the change it describes (`queue_for_event`, called by
`store.events.record_event`) and delivered by the workers (bot.usecases.webhooks_out).

A delivery's payload holds customer data: it is sealed with the customer's data key, and the
receiver gets it in clear over HTTPS. Deliveries of one endpoint and task go out in order: a
delivery is claimed only once no earlier delivery of its endpoint and task is pending.
"""

import base64
import secrets
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import (
    Select,
    Update,
    and_,
    bindparam,
    exists,
    false,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from store.contacts import data_key_of
from store.crypto import personal
from store.errors import DomainError, NotFound
from store.models import Contact, Message, Task, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from store.rows import per_transaction

EVENT_TYPES = ("task.created", "task.assigned", "task.status_changed", "task.closed",
               "task.sla_breached", "message.received", "message.sent", "contact.updated",
               "csat.received")
PAYLOAD_VERSION = 1  # data["version"]: raised when a field changes meaning or goes away
_ASSIGNING = frozenset({"assign", "reassign"})  # store.lifecycle.Action (no import: a cycle)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after the retry schedule (about three days)
    CANCELLED = "cancelled"  # its endpoint was disabled before it went out


class InvalidEndpoint(DomainError, ValueError):
    """A URL or an event name that cannot be subscribed; the message says why."""


# --- endpoints --------------------------------------------------------------------------------

def add_endpoint(session: Session, *, url: str, events: Collection[str],
                 now: datetime) -> tuple[WebhookEndpoint, str]:
    """Subscribes `url` to `events`; returns the endpoint and its secret (`whsec_…`, shown
    this once: it is stored sealed). Raises InvalidEndpoint."""
    endpoint = WebhookEndpoint(url=_checked_url(url), events=_checked_events(events),
                               secret=new_secret(), created_at=now)
    session.add(endpoint)
    session.flush()
    per_transaction(session, _ENDPOINTS).clear()
    return endpoint, endpoint.secret


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _checked_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidEndpoint(f"{url!r} is not an http(s) URL such as https://crm.example/hook")
    return url.strip()


def _checked_events(events: Collection[str]) -> list[str]:
    chosen = [event.strip() for event in events if event.strip()]
    unknown = sorted(set(chosen) - set(EVENT_TYPES))
    if unknown or not chosen:
        raise InvalidEndpoint(f"unknown event type(s) {', '.join(unknown) or '(none given)'}; "
                              f"choose among {', '.join(EVENT_TYPES)}")
    return sorted(set(chosen), key=EVENT_TYPES.index)


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    """Every endpoint, enabled or not, oldest first."""
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def get_endpoint(session: Session, *, endpoint_id: int) -> WebhookEndpoint:
    """The endpoint `endpoint_id`; raises NotFound."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id} (see `opsbot webhooks list`)")
    return endpoint


def disable_endpoint(session: Session, *, endpoint_id: int, reason: str,
                     now: datetime) -> WebhookEndpoint:
    """Stops the endpoint (kept, with `reason`) and cancels its pending deliveries; returns
    it. Raises NotFound. Disabling a disabled endpoint changes nothing."""
    endpoint = get_endpoint(session, endpoint_id=endpoint_id)
    if endpoint.disabled_at is None:
        endpoint.disabled_at, endpoint.disabled_reason = now, reason[:500]
        session.execute(update(WebhookDelivery)
                        .where(WebhookDelivery.endpoint_id == endpoint_id,
                               WebhookDelivery.status == DeliveryStatus.PENDING)
                        .values(status=DeliveryStatus.CANCELLED, claimed_by=None))
        per_transaction(session, _ENDPOINTS).clear()
    return endpoint


_ENDPOINTS = "webhook_endpoints"  # per_transaction: "enabled" -> the enabled endpoints


def _enabled_endpoints(session: Session) -> list[tuple[int, list[str]]]:
    """The enabled endpoints (id, events), read once per transaction: record_event runs
    several times per message, and a drain applies 25 messages in one transaction. Within it,
    an endpoint committed before the transaction began is always seen, so that no event
    after a subscription is missed."""
    cached = per_transaction(session, _ENDPOINTS)
    if "enabled" not in cached:
        cached["enabled"] = [(e.id, e.events) for e in session.execute(_enabled_query())]
    return cached["enabled"]


@cache
def _enabled_query() -> Select:
    """Built once: every transaction that writes an audit event runs it."""
    return (select(WebhookEndpoint.id, WebhookEndpoint.events)
            .where(WebhookEndpoint.disabled_at.is_(None)).order_by(WebhookEndpoint.id))


# --- queueing ---------------------------------------------------------------------------------

def webhook_types(*, action: str, from_status: str | None, to_status: str | None,
                  details: dict[str, Any]) -> list[str]:
    """The webhook types an audit event is announced as (none for most system events)."""
    if action == "created":
        return ["task.created", *(["message.received"] if "message_id" in details else [])]
    if action in _ASSIGNING:
        return ["task.assigned"]
    if from_status is not None and to_status is not None and from_status != to_status:
        return ["task.status_changed", *(["task.closed"] if action == "close" else [])]
    return list(_SIMPLE.get(action, ()))


_SIMPLE = {"message": ("message.received",), "reply": ("message.sent",),
           "rated": ("csat.received",), "contact_updated": ("contact.updated",),
           "escalated": ("task.sla_breached",)}


def queue_for_event(session: Session, *, task: Task | None, actor: str, action: str,
                    from_status: str | None, to_status: str | None, details: dict[str, Any],
                    event_id: int | None, at: datetime) -> int:
    """Queues, for every enabled endpoint subscribed to it, the webhook(s) that announce an
    audit event (payloads sealed with the customer's key); returns how many."""
    if not _enabled_endpoints(session):
        return 0
    types = webhook_types(action=action, from_status=from_status, to_status=to_status,
                          details=details)
    if action == "escalated" and not _first_breach(session, task, details):
        types = []  # the breach ladder records one event per step: one webhook per breach
    endpoints = _subscribed(session, types) if types else []
    if not endpoints:
        return 0
    contact_id = task.contact_id if task is not None else details.get("contact_id")
    key_id = data_key_of(session, contact_id=contact_id)
    event = {"task": task, "actor": actor, "action": action, "from": from_status,
             "to": to_status, "details": details, "event_id": event_id, "at": at}
    payloads = {kind: personal(build_payload(session, kind, event), key_id) for kind in types}
    rows = [_delivery_row(endpoint_id, kind, payloads[kind], task, at)
            for kind in types for endpoint_id, events in endpoints if kind in events]
    session.connection().execute(insert(WebhookDelivery.__table__), rows)
    return len(rows)


def _first_breach(session: Session, task: Task | None, details: dict[str, Any]) -> bool:
    seen = per_transaction(session, "webhook_breaches")
    key = (task.id if task is not None else None, details.get("deadline"), details.get("due"))
    if key in seen:
        return False
    seen[key] = True
    return True


def _subscribed(session: Session, types: Sequence[str]) -> list[tuple[int, list[str]]]:
    """The enabled endpoints (id, events) subscribed to one of `types`."""
    return [(id_, events) for id_, events in _enabled_endpoints(session)
            if set(types) & set(events)]


def _delivery_row(endpoint_id: int, kind: str, payload: Any, task: Task | None,
                  at: datetime) -> dict[str, Any]:
    return {"endpoint_id": endpoint_id, "message_id": new_message_id(), "type": kind,
            "task_id": task.id if task is not None else None, "payload": payload,
            "status": DeliveryStatus.PENDING, "attempts": 0, "next_attempt_at": at,
            "created_at": at, "delivered_at": None, "claimed_by": None, "dispatched_at": None}


def new_message_id() -> str:
    """A webhook-id: `msg_` and 32 hex digits, the same for every attempt of a delivery."""
    return f"msg_{uuid.uuid4().hex}"


# --- payloads (README: Outgoing webhooks; version PAYLOAD_VERSION) -----------------------------

def build_payload(session: Session, kind: str, event: dict[str, Any]) -> dict[str, Any]:
    """`{"type", "timestamp", "data"}` for webhook type `kind` of an audit `event` (its task,
    actor, action, from, to, details, event_id and at)."""
    task, details = event["task"], event["details"]
    data: dict[str, Any] = {"version": PAYLOAD_VERSION, "event_id": event["event_id"],
                            "actor": event["actor"], "action": event["action"]}
    if task is not None:
        data["task"] = task_snapshot(task, status=event["to"], at=event["at"])
    if kind in ("task.assigned", "task.status_changed", "task.closed"):
        data |= {"from": event["from"], "to": event["to"], "reason": details.get("reason")}
    if kind == "task.assigned":
        data |= {"assignee": task.assignee_id if task else None,
                 "previous_assignee": details.get("previous_assignee")}
    elif kind == "task.sla_breached":
        data |= {"deadline": details.get("deadline"), "due": details.get("due")}
    elif kind in ("message.received", "message.sent"):
        data["message"] = _message(session, details)
    elif kind == "csat.received":
        data["rating"] = details.get("rating")
    elif kind == "contact.updated":
        contact = session.get(Contact, details.get("contact_id"))
        data |= {"contact": contact_snapshot(contact), "fields": details.get("fields", [])}
    return {"type": kind, "timestamp": _iso(event["at"]), "data": data}


def task_snapshot(task: Task, *, status: str | None = None,
                  at: datetime | None = None) -> dict[str, Any]:
    """A task as the CRM sees it (status: the one the event moved it to)."""
    updated = max(filter(None, (task.updated_at, at)), default=None)
    return {"ref": task.ref, "number": task.number, "status": str(status or task.status),
            "priority": task.priority, "category": task.category, "team": task.team,
            "assignee": task.assignee_id, "tags": list(task.tags or []), "title": task.title,
            "contact": contact_snapshot(task.contact),
            "first_response_due": _iso(task.first_response_due),
            "resolution_due": _iso(task.resolution_due),
            "created_at": _iso(task.created_at), "updated_at": _iso(updated)}


def contact_snapshot(contact: Contact | None) -> dict[str, Any] | None:
    """A customer as the CRM sees them."""
    if contact is None:
        return None
    return {"id": contact.id, "wa_id": contact.wa_id, "name": contact.name,
            "crm_status": contact.crm_status, "tags": list(contact.tags or []),
            "language": contact.language, "external_ids": dict(contact.external_ids or {})}


def _message(session: Session, details: dict[str, Any]) -> dict[str, Any]:
    text, kind = details.get("text"), details.get("type", "text")
    if text is None and details.get("message_id") is not None:  # a task's first message
        stored = session.get(Message, details["message_id"])  # in the session: no query
        text, kind = (stored.text, stored.type) if stored is not None else (None, kind)
    return {"id": details.get("message_id"), "type": kind, "text": text}


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


# --- deliveries -------------------------------------------------------------------------------

def list_deliveries(session: Session, *, endpoint_id: int,
                    limit: int = 50) -> list[WebhookDelivery]:
    """The latest `limit` deliveries of an endpoint, newest first."""
    query = (select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
             .order_by(WebhookDelivery.id.desc()).limit(limit))
    return list(session.scalars(query))


def list_attempts(session: Session, *,
                  delivery_ids: Sequence[int]) -> dict[int, list[WebhookAttempt]]:
    """The attempts of each delivery of `delivery_ids`, oldest first."""
    query = (select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(list(delivery_ids)))
             .order_by(WebhookAttempt.id))
    found: dict[int, list[WebhookAttempt]] = {}
    for attempt in session.scalars(query):
        found.setdefault(attempt.delivery_id, []).append(attempt)
    return found


def replay_delivery(session: Session, *, delivery_id: int, now: datetime) -> WebhookDelivery:
    """Sends a delivery again as a NEW delivery (same payload, new webhook-id, so that a
    receiver that dedupes on the id takes it), after the pending ones of its task; the old one
    keeps its history. Raises NotFound, or InvalidEndpoint when its endpoint is disabled."""
    old = session.get(WebhookDelivery, delivery_id)
    if old is None:
        raise NotFound(f"no webhook delivery {delivery_id}")
    if get_endpoint(session, endpoint_id=old.endpoint_id).disabled_at is not None:
        raise InvalidEndpoint(f"endpoint {old.endpoint_id} is disabled: nothing is sent to it")
    if not old.payload:
        raise DomainError(f"delivery {delivery_id} cannot be sent again: its customer's data "
                          "was erased")
    key_id = data_key_of(session, contact_id=_contact_of(session, old.task_id))
    replay = WebhookDelivery(**{**_delivery_row(old.endpoint_id, old.type, None, None, now),
                                "task_id": old.task_id,
                                "payload": personal(dict(old.payload), key_id)})
    session.add(replay)
    session.flush()
    return replay


def _contact_of(session: Session, task_id: int | None) -> int | None:
    task = session.get(Task, task_id) if task_id is not None else None
    return task.contact_id if task is not None else None


@dataclass(frozen=True)
class Claimed:
    """A delivery to send: what the worker needs, read in the claiming transaction."""

    id: int
    endpoint_id: int
    task_id: int | None
    url: str
    secret: str
    message_id: str
    payload: dict[str, Any]
    attempts: int


def claim_deliveries(session: Session, *, owner: str, limit: int, follow: int,
                     now: datetime) -> list[Claimed]:
    """Claims for `owner` up to `limit` due deliveries that head their (endpoint, task) queue,
    and up to `follow` due deliveries queued behind them; returns them oldest first (send
    each queue in that order). On PostgreSQL the heads are locked with SKIP LOCKED. Those
    whose customer was erased since (their payload opens empty) are cancelled instead."""
    heads = list(session.execute(_heads_query(), {"now": now, "limit": limit}))
    if not heads:
        return []
    ids = [row.id for row in heads] + _followers(session, heads, follow=follow, now=now)
    session.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_(ids))
                    .values(claimed_by=owner, dispatched_at=now)
                    .execution_options(synchronize_session=False))
    endpoints = {e.id: e for e in session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.secret)
        .where(WebhookEndpoint.id.in_({row.endpoint_id for row in heads})))}
    query = (select(WebhookDelivery.id, WebhookDelivery.endpoint_id, WebhookDelivery.task_id,
                    WebhookDelivery.message_id, WebhookDelivery.payload,
                    WebhookDelivery.attempts)
             .where(WebhookDelivery.id.in_(ids)).order_by(WebhookDelivery.id))
    rows = list(session.execute(query))
    erased = [d.id for d in rows if not d.payload]  # its customer was erased: nothing to send
    if erased:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_(erased))
                        .values(status=DeliveryStatus.CANCELLED, claimed_by=None)
                        .execution_options(synchronize_session=False))
    return [Claimed(id=d.id, endpoint_id=d.endpoint_id, task_id=d.task_id,
                    url=endpoints[d.endpoint_id].url, secret=endpoints[d.endpoint_id].secret,
                    message_id=d.message_id, payload=dict(d.payload), attempts=d.attempts)
            for d in rows if d.payload]


@cache
def _heads_query() -> Select:
    delivery, earlier = WebhookDelivery, aliased(WebhookDelivery)
    before = (earlier.endpoint_id == delivery.endpoint_id,
              earlier.status == DeliveryStatus.PENDING, earlier.id < delivery.id)
    # Two lookups that each use ix_webhook_deliveries_endpoint_task (an OR of both would not):
    # deliveries of no task (contact.updated) queue together per endpoint.
    blocked = exists().where(earlier.task_id == delivery.task_id, *before)
    blocked_no_task = and_(delivery.task_id.is_(None),
                           exists().where(earlier.task_id.is_(None), *before))
    return (select(delivery.id, delivery.endpoint_id, delivery.task_id)
            .where(delivery.status == DeliveryStatus.PENDING,
                   delivery.next_attempt_at <= bindparam("now"),
                   delivery.dispatched_at.is_(None), ~blocked, ~blocked_no_task)
            .order_by(delivery.id).limit(bindparam("limit"))
            .with_for_update(skip_locked=True, of=delivery))


def _followers(session: Session, heads: list, *, follow: int, now: datetime) -> list[int]:
    """The deliveries queued right behind each head, due and free (nobody else claims them:
    their head is pending, and it is ours); a queue stops at its first one that is not."""
    first = {(row.endpoint_id, row.task_id): row.id for row in heads}
    tasks = {task for _endpoint, task in first}
    of_tasks = or_(WebhookDelivery.task_id.in_([t for t in tasks if t is not None]),
                   WebhookDelivery.task_id.is_(None) if None in tasks else false())
    query = (select(WebhookDelivery.id, WebhookDelivery.endpoint_id, WebhookDelivery.task_id,
                    WebhookDelivery.next_attempt_at, WebhookDelivery.dispatched_at)
             .where(WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.endpoint_id.in_({e for e, _t in first}), of_tasks,
                    WebhookDelivery.id > min(first.values()))
             .order_by(WebhookDelivery.id).limit(follow * 4))
    followers, stopped = [], set()
    for row in session.execute(query):
        queue = (row.endpoint_id, row.task_id)
        if queue not in first or row.id < first[queue] or queue in stopped:
            continue
        if row.dispatched_at is not None or row.next_attempt_at > now or len(followers) >= follow:
            stopped.add(queue)
            continue
        followers.append(row.id)
    return followers


@dataclass(frozen=True)
class Outcome:
    """One attempt of a delivery and what follows: `status` DELIVERED, FAILED (given up),
    or PENDING again at `next_attempt_at`; `gone` (410): the endpoint is disabled."""

    delivery_id: int
    at: datetime
    status: DeliveryStatus
    status_code: int | None = None
    latency_ms: int | None = None
    response_head: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    gone: bool = False


def record_outcomes(session: Session, *, outcomes: Sequence[Outcome], released: Sequence[int],
                    owner: str, now: datetime) -> None:
    """Writes each attempt and its delivery's new state; frees the `released` deliveries
    (claimed but not tried: one before them failed) and disables the endpoints that answered
    410 Gone. Deliveries `owner` no longer holds (cancelled meanwhile) keep their state."""
    if outcomes:
        session.execute(insert(WebhookAttempt.__table__), [
            {"delivery_id": o.delivery_id, "at": o.at, "status_code": o.status_code,
             "latency_ms": o.latency_ms, "response_head": o.response_head, "error": o.error}
            for o in outcomes])
    if outcomes:
        session.connection().execute(_outcome_update(), [
            {"b_id": o.delivery_id, "b_owner": owner, "b_status": o.status,
             "b_next": o.next_attempt_at,
             "b_delivered": o.at if o.status == DeliveryStatus.DELIVERED else None}
            for o in outcomes])
    if released:
        session.execute(_held(owner, released).values(claimed_by=None, dispatched_at=None))
    for outcome in (o for o in outcomes if o.gone):
        endpoint_id = session.get(WebhookDelivery, outcome.delivery_id).endpoint_id
        disable_endpoint(session, endpoint_id=endpoint_id, now=now,
                         reason=f"the receiver answered 410 Gone (delivery {outcome.delivery_id})")


@cache
def _outcome_update() -> Update:
    columns = WebhookDelivery.__table__.c
    return (update(WebhookDelivery.__table__)
            .where(columns.id == bindparam("b_id"), columns.claimed_by == bindparam("b_owner"),
                   columns.status == DeliveryStatus.PENDING)
            .values(status=bindparam("b_status"), attempts=columns.attempts + 1,
                    next_attempt_at=bindparam("b_next"), delivered_at=bindparam("b_delivered"),
                    claimed_by=None, dispatched_at=None))


def _held(owner: str, ids: Sequence[int]) -> Update:
    return (update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(list(ids)), WebhookDelivery.claimed_by == owner,
                   WebhookDelivery.status == DeliveryStatus.PENDING)
            .execution_options(synchronize_session=False))


def has_due_deliveries(session: Session, *, now: datetime) -> bool:
    """Whether a pending delivery nobody holds is due (the delivery job has work)."""
    query = select(WebhookDelivery.id).where(WebhookDelivery.status == DeliveryStatus.PENDING,
                                             WebhookDelivery.next_attempt_at <= now,
                                             WebhookDelivery.dispatched_at.is_(None))
    return session.scalar(query.limit(1)) is not None


def held_deliveries(session: Session, *, before: datetime) -> dict[str, list[int]]:
    """The pending deliveries claimed before `before`, by holder (a job id)."""
    query = (select(WebhookDelivery.claimed_by, WebhookDelivery.id)
             .where(WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.dispatched_at < before).order_by(WebhookDelivery.id))
    held: dict[str, list[int]] = {}
    for owner, delivery_id in session.execute(query):
        held.setdefault(owner, []).append(delivery_id)
    return held


def release_deliveries(session: Session, *, ids: Sequence[int], owner: str) -> None:
    """Frees deliveries `owner` holds (its job is gone) for the next claim."""
    session.execute(_held(owner, ids).values(claimed_by=None, dispatched_at=None))

"""Claims on pending rows (inbound events, outbox rows): which job works which row.

A claim sets `dispatched_at` and `claimed_by` (the claiming job's id). Two workers never claim
the same row: on PostgreSQL the rows are locked with SKIP LOCKED, on SQLite the write
transaction holds the database. A claim ends when the row stops being pending, or when the
sweeper releases the rows of a job that is gone.
"""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from store.models import EventStatus, InboundEvent, OutboxMessage, OutboxStatus
from store.timers import has_timers_to_schedule
from store.types import utcnow

Claimable = type[InboundEvent] | type[OutboxMessage]
_PENDING = {InboundEvent: EventStatus.PENDING, OutboxMessage: OutboxStatus.PENDING}


def hand_over(session: Session, model: Claimable, ids: Sequence[int], *, owner: str,
              now: datetime) -> None:
    """Records `owner` (a job) as the holder of these rows, e.g. a retry job of one row."""
    session.execute(
        update(model).where(model.id.in_(list(ids)))
        .values(dispatched_at=now, claimed_by=owner)
        .execution_options(synchronize_session=False)
    )


def held_claims(session: Session, model: Claimable, *,
                before: datetime) -> dict[str | None, list[int]]:
    """The pending rows claimed before `before`, by holder (None: claimed before holders
    were recorded)."""
    rows = session.execute(
        select(model.claimed_by, model.id)
        .where(model.status == _PENDING[model], model.dispatched_at < before)
        .order_by(model.id)
    )
    held: dict[str | None, list[int]] = {}
    for owner, row_id in rows:
        held.setdefault(owner, []).append(row_id)
    return held


def release(session: Session, model: Claimable, ids: Sequence[int], *,
            owner: str | None) -> None:
    """Makes these rows free for the next claim, unless `owner` no longer holds them."""
    held = model.claimed_by.is_(None) if owner is None else model.claimed_by == owner
    session.execute(
        update(model).where(model.id.in_(list(ids)), model.status == _PENDING[model], held)
        .values(dispatched_at=None, claimed_by=None)
        .execution_options(synchronize_session=False)
    )


def has_free(session: Session, model: Claimable, *, now: datetime | None = None) -> bool:
    """Whether some pending row that is due at `now` (default: the present) waits for a
    claim."""
    query = select(model.id).where(model.status == _PENDING[model], model.dispatched_at.is_(None),
                                   *_due(model, now or utcnow()))
    return session.scalar(query.limit(1)) is not None


def _due(model: Claimable, now: datetime) -> tuple[ColumnElement[bool], ...]:
    # An outbox row may wait for a moment (a survey sent some minutes after the closing):
    # it is not claimed before. The pending rows are few, found by the status index.
    if model is not OutboxMessage:
        return ()
    return (or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now),)


def claim_outbox(session: Session, *, owner: str, limit: int,
                 now: datetime) -> list[OutboxMessage]:
    """Claims for `owner` (a job id) up to `limit` pending outbox rows due at `now` that
    nobody holds (or that `owner` held before it was restarted); returns them, oldest first.
    One statement: an UPDATE of the rows a sub-select picks (skipping, on PostgreSQL, those
    another worker has locked), returning them."""
    free = or_(OutboxMessage.dispatched_at.is_(None), OutboxMessage.claimed_by == owner)
    picked = (
        select(OutboxMessage.id)
        .where(OutboxMessage.status == OutboxStatus.PENDING, free, *_due(OutboxMessage, now))
        .order_by(OutboxMessage.id).limit(limit).with_for_update(skip_locked=True)
    )
    claimed = session.scalars(
        update(OutboxMessage).where(OutboxMessage.id.in_(picked))
        .values(dispatched_at=now, claimed_by=owner).returning(OutboxMessage),
        execution_options={"synchronize_session": False},
    )
    return sorted(claimed, key=lambda row: row.id)


def has_free_work(session: Session) -> bool:
    """Whether the database holds work that no job holds: a free event or outbox row, or a
    task whose timers are to schedule."""
    return (has_free(session, InboundEvent) or has_free(session, OutboxMessage)
            or has_timers_to_schedule(session))

"""Which tasks' SLA timers are to schedule: `timer_generation` moves on with every change of
a task (`transition_task`), `scheduled_generation` records the generation whose timers a
worker scheduled. Workers claim the tasks where the two differ."""

from collections.abc import Sequence

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, lazyload

from store.models import OPEN_STATUSES, TIMERS_TO_SCHEDULE, Task, TaskStatus

# The predicate of the tasks' partial index, in parentheses: it is an OR, and a text clause is
# not grouped when ANDed with another condition.
_STALE = text(f"({TIMERS_TO_SCHEDULE})")


def has_timers_to_schedule(session: Session) -> bool:
    """Whether some task's timers are to schedule."""
    return session.scalar(select(Task.id).where(_STALE).limit(1)) is not None


def claim_tasks_to_schedule(session: Session, *, limit: int) -> list[Task]:
    """Claims up to `limit` tasks whose timers are to schedule (marks their generation
    scheduled) and returns them; another worker may have taken some meanwhile."""
    ids = list(session.scalars(select(Task.id).where(_STALE).order_by(Task.id).limit(limit)))
    if not ids:
        return []
    claimed = session.scalars(
        update(Task).where(Task.id.in_(ids), _STALE)
        .values(scheduled_generation=Task.timer_generation)
        .returning(Task.id)
        .execution_options(synchronize_session=False)
    ).all()
    query = select(Task).where(Task.id.in_(claimed)).options(lazyload(Task.contact))
    return list(session.scalars(query))


def unmark_scheduled(session: Session, *, task_ids: Sequence[int]) -> None:
    """Marks these tasks' timers to schedule again (their scheduling failed)."""
    session.execute(
        update(Task).where(Task.id.in_(list(task_ids)))
        .values(scheduled_generation=None)
        .execution_options(synchronize_session=False)
    )


def list_tasks_with_timers(session: Session) -> list[Task]:
    """The tasks whose current timers were scheduled and may be running: open, not waiting
    on the customer (the sweeper checks that Redis still has their jobs)."""
    active = set(OPEN_STATUSES) - {TaskStatus.WAITING_CUSTOMER}
    query = select(Task).where(Task.status.in_(list(active)),
                               Task.scheduled_generation == Task.timer_generation)
    return list(session.scalars(query))

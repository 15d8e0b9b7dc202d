"""Tasks that arrived late (a deadline had passed before their message reached us), gathered
per team and summary instant so that a backlog gives one summary card, not a storm."""

from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, lazyload

from store.events import Audit
from store.models import Task, TaskEvent


def find_late_summary(session: Session, *, team: str | None, after: datetime) -> datetime | None:
    """The latest summary instant of `team`'s late tasks (None: the tasks without a team)
    that is still after `after`, or None when no summary of the team is pending."""
    query = select(func.max(Task.late_summary_at)).where(
        _of_team(team), Task.late_summary_at > after)
    return session.scalar(query)


def list_late_arrivals(session: Session, *, team: str | None,
                       summary_at: datetime) -> list[tuple[str, datetime | None]]:
    """Each late task of `team` summarised at `summary_at`, oldest first: its ref and when
    its customer sent the message (from its `arrived_late` event)."""
    query = (select(Task, TaskEvent.details)
             .join(TaskEvent, (TaskEvent.task_id == Task.id)
                   & (TaskEvent.action == Audit.ARRIVED_LATE))
             .where(_of_team(team), Task.late_summary_at == summary_at)
             .order_by(Task.id).options(lazyload(Task.contact)))
    return [(task.ref, _instant(details.get("sent_at")))
            for task, details in session.execute(query)]


def _of_team(team: str | None) -> ColumnElement[bool]:
    return Task.team.is_(None) if team is None else Task.team == team


def _instant(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None

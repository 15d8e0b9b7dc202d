"""`GET /tasks`, `GET /tasks/{ref}`: tasks as a key's agent (or an admin) may see them."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from bot.api.auth import Caller, require, services_of
from bot.api.pagination import MAX_ID, CursorParam, LimitParam, Page, decode_cursor, encode_cursor
from bot.api.problems import Problem
from bot.api.schemas import TaskDetail, TaskOut, event_out, message_out, task_out
from bot.core import tunables
from store.errors import NotAllowed, NotFound
from store.events import list_events
from store.lifecycle import Access, check_access, visible_to
from store.messages import list_task_messages
from store.models import OPEN_STATUSES, Task, TaskStatus
from store.tasks import get_task, page_tasks, parse_ref

MESSAGES_SHOWN = 200  # a task's last messages in `GET /tasks/{ref}`
# `?status=`: one status, or `open` for every status of a task still to be done.
StatusFilter = StrEnum("StatusFilter", {**{s.name: s.value for s in TaskStatus},
                                        "OPEN": "open"})
RefParam = Annotated[str, Path(max_length=20, description="T-12 or 12.")]
Reader = Annotated[Caller, Depends(require("tasks:read"))]

router = APIRouter(tags=["tasks"])


@router.get("/tasks", response_model=Page[TaskOut])
def list_tasks(
    request: Request,
    caller: Reader,
    status: StatusFilter | None = None,
    team: Annotated[str | None, Query(max_length=64)] = None,
    assignee: Annotated[str | None, Query(max_length=64)] = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
    priority: Annotated[str | None, Query(max_length=16)] = None,
    updated_after: datetime | None = None,
    cursor: CursorParam = None,
    limit: LimitParam = tunables.API_PAGE_DEFAULT,
) -> Page[TaskOut]:
    """Tasks in id order, filtered; a key bound to an agent sees that agent's tasks."""
    statuses = None if status is None else OPEN_STATUSES if status == "open" else [status]
    fields = {"team": team, "assignee_id": assignee, "category": category, "priority": priority}
    with services_of(request).db.transaction(readonly=True) as session:
        tasks = page_tasks(session, after=decode_cursor(cursor), limit=limit + 1,
                           statuses=statuses, fields=fields,
                           updated_after=updated_after and utc(updated_after),
                           visible=visible_to(caller.actor))
        data = [task_out(task) for task in tasks[:limit]]
    more = len(tasks) > limit
    return Page[TaskOut](data=data, next_cursor=encode_cursor(data[-1].id) if more else None)


@router.get("/tasks/{ref}", response_model=TaskDetail)
def show_task(request: Request, caller: Reader, ref: RefParam) -> TaskDetail:
    """One task with its messages (both ways) and its audit trail."""
    with services_of(request).db.transaction(readonly=True) as session:
        task = find_visible_task(session, ref, caller)
        messages = list_task_messages(session, task_id=task.id, limit=MESSAGES_SHOWN)
        events = list_events(session, task_id=task.id)
        return TaskDetail(**task_out(task).model_dump(),
                          messages=[message_out(m) for m in messages],
                          events=[event_out(e) for e in events])


def find_visible_task(session, ref: str, caller: Caller) -> Task:
    """The task `ref` if `caller` may see it; else a 404 or 403 problem."""
    task = find_task(session, ref)
    try:
        check_access(task, Access.SEE, caller.actor)
    except NotAllowed as exc:
        raise Problem(403, str(exc)) from exc
    return task


def find_task(session, ref: str) -> Task:
    """The task `ref`, or a 404 problem."""
    try:
        if parse_ref(ref) > MAX_ID:  # beyond the id column: asking would be a DataError
            raise NotFound(f"There is no task T-{parse_ref(ref)}")
        return get_task(session, ref=ref)
    except NotFound as exc:
        raise Problem(404, str(exc)) from exc


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

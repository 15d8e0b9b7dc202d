"""`GET /events?after=…`: the audit trail as a stream for pollers, in id order.

On PostgreSQL, ids are handed out when a row is inserted, not when its transaction commits: a
poller could read event 11 while event 10 is still in flight, move its cursor past 10, and
never see it. So the stream stops before a hole in the ids as long as the event after the
hole is younger than EVENTS_GAP_GRACE (a transaction that writes audit events commits within
it): once older, the hole is taken as a rollback or a purge, and the stream goes past it.
SQLite has one writer at a time: its ids commit in order and this never holds anything back.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from bot.api.auth import Caller, require, services_of
from bot.api.pagination import LimitParam, Page, decode_cursor, encode_cursor
from bot.api.schemas import EventOut, event_out
from bot.core import tunables
from store.events import list_events_after
from store.models import TaskEvent
from store.types import utcnow

router = APIRouter(tags=["events"])


@router.get("/events", response_model=Page[EventOut])
def stream_events(
    request: Request,
    caller: Annotated[Caller, Depends(require("events:read"))],
    after: Annotated[str | None, Query(max_length=64, description="next_cursor of the "
                                       "previous call; none to start at the beginning.")] = None,
    limit: LimitParam = tunables.API_PAGE_DEFAULT,
) -> Page[EventOut]:
    """Audit events after the cursor. `next_cursor` is where to poll from next (null only
    while there are no events at all): keep calling with it."""
    last = decode_cursor(after)
    with services_of(request).db.transaction(readonly=True) as session:
        events = settled(list_events_after(session, after=last, limit=limit), after=last,
                         now=utcnow())
        data = [event_out(event) for event in events]
    last = data[-1].id if data else last
    return Page[EventOut](data=data, next_cursor=encode_cursor(last) if last else None)


def settled(events: Sequence[TaskEvent], *, after: int, now: datetime) -> list[TaskEvent]:
    """The events up to the first young hole in the ids (module docstring)."""
    previous = after
    for index, event in enumerate(events):
        if event.id != previous + 1 and now - event.at < tunables.EVENTS_GAP_GRACE:
            return list(events[:index])
        previous = event.id
    return list(events)

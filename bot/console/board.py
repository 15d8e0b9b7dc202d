"""The board: the open tasks the viewer may see, filtered, sorted by due time, and kept live
by a Server-Sent Events stream that says when anything changed (the page then fetches its
rows again)."""

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from bot.console.auth import Viewer, services_of, signed_in
from bot.console.pages import render
from bot.core import tunables
from store.board import BoardFilters, SlaState, board_version, list_board
from store.types import utcnow

router = APIRouter()
Signed = Annotated[Viewer, Depends(signed_in)]
SLA_LABELS = {SlaState.ON_TRACK: "on track", SlaState.AT_RISK: "at risk",
              SlaState.BREACHED: "breached", SlaState.WAITING_TEAM: "waiting for the team",
              SlaState.PAUSED: "paused (waiting for the customer)", SlaState.NO_SLA: "no SLA"}
STATUSES = ("new", "assigned", "accepted", "in_progress", "waiting_customer")


@router.get("/", name="board_page")
def board_page(request: Request, viewer: Signed) -> Response:
    return render(request, "board.html", viewer=viewer, **_board(request, viewer))


@router.get("/board/rows", name="board_rows")
def board_rows(request: Request, viewer: Signed) -> Response:
    """The rows alone, for htmx (a filter changed, or the stream said the board did)."""
    return render(request, "_board_rows.html", viewer=viewer, **_board(request, viewer))


def _board(request: Request, viewer: Viewer) -> dict:
    filters = BoardFilters.from_query(request.query_params)
    now = utcnow()
    with services_of(request).db.transaction(readonly=True) as session:
        board = list_board(session, actor=viewer.actor, filters=filters, now=now,
                           limit=tunables.CONSOLE_BOARD_LIMIT)
    return {"board": board, "filters": filters, "now": now, "sla_labels": SLA_LABELS,
            "statuses": STATUSES, "query": request.url.query}


@router.get("/board/stream", name="board_stream")
async def board_stream(request: Request, viewer: Signed) -> StreamingResponse:
    """`event: board` whenever the audit trail grew (a task was created or changed), read
    from the database so that every web process tells the same; a comment line every few
    seconds keeps proxies from closing the stream."""
    return StreamingResponse(_changes(request), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _changes(request: Request) -> AsyncIterator[str]:
    services = services_of(request)
    loop = asyncio.get_running_loop()
    ends = loop.time() + tunables.CONSOLE_STREAM_FOR
    seen = await asyncio.to_thread(_version, services)
    yield f"retry: 2000\nevent: hello\ndata: {seen}\n\n"
    while loop.time() < ends and not await request.is_disconnected():
        await asyncio.sleep(tunables.CONSOLE_STREAM_POLL)
        version = await asyncio.to_thread(_version, services)
        if version != seen:
            seen = version
            yield f"event: board\ndata: {version}\n\n"
        else:
            yield ": still here\n\n"


def _version(services) -> int:
    with services.db.transaction(readonly=True) as session:
        return board_version(session)

"""Cursor pagination: `?cursor=…&limit=…` → `{"data": […], "next_cursor": … | null}`.

Lists are in id order and a cursor is the last id seen (opaque to clients: base64 of
`id:<n>`), so rows inserted while a client pages are neither skipped nor repeated.
"""

import base64
import binascii
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from bot.api.problems import Problem
from bot.core import tunables

MAX_ID = 2**31 - 1  # ids are 32-bit integers (PostgreSQL `integer`)
CursorParam = Annotated[str | None, Query(max_length=64, description="next_cursor of the "
                                          "previous page; none for the first page.")]
LimitParam = Annotated[int, Query(ge=1, le=tunables.API_PAGE_MAX,
                                  description="Items per page (1-200, default 50).")]


Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    """One page of a list; `next_cursor` is null on the last page."""

    data: list[Item]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    """The cursor that continues after row `last_id`."""
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The last id a cursor saw (0 without one). Raises a 422 problem for a bad cursor."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind == "id" and value.isdigit() and int(value) <= MAX_ID:
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise Problem(422, "cursor: not a cursor this API gave; pass next_cursor as it came")


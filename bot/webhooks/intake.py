"""Durable intake: raw webhook items committed by ONE writer with group commit.

SQLite has one writer; per-request commits from many threads reach ~1,300 req/s. Here every
request puts its rows on a queue and waits; a single task inserts everything waiting in one
transaction and only then wakes those requests, so each 200 still follows its own commit.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from store.db import Database
from store.inbound import insert_events

log = logging.getLogger(__name__)

Rows = list[dict[str, Any]]


class IntakeWriter:
    """Commits raw event rows for many concurrent requests; `store` returns after the commit.

    `after_commit` (e.g. asking for a drain of the new events) runs in a worker thread after
    commits, coalesced: at most one run at a time, never delaying an answer.
    """

    def __init__(self, db: Database, *, max_batch: int,
                 after_commit: Callable[[], None] | None = None) -> None:
        self.db = db
        self.after_commit = after_commit
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Rows, asyncio.Future]] = asyncio.Queue()
        self._committed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write_loop(), name="intake-writer")]
        if self.after_commit is not None:
            self._tasks.append(asyncio.create_task(self._after_loop(), name="intake-dispatch"))

    async def store(self, rows: Rows) -> None:
        """Returns once `rows` are committed; raises the database error when they are not."""
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((rows, future))
        await future

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < self.max_batch:
                batch.append(self._queue.get_nowait())
            await self._commit(batch)
            self._committed.set()

    async def _commit(self, batch: list[tuple[Rows, asyncio.Future]]) -> None:
        try:
            await asyncio.to_thread(self._insert, [row for rows, _ in batch for row in rows])
        except Exception as exc:
            if len(batch) == 1:
                log.exception("intake: could not store a webhook")
                _settle(batch[0][1], exc)
                return
            for item in batch:  # one bad request must not fail the others
                await self._commit([item])
            return
        for _, future in batch:
            _settle(future, None)

    def _insert(self, rows: Rows) -> None:
        with self.db.transaction() as session:
            insert_events(session, rows=rows)

    async def _after_loop(self) -> None:
        while True:
            await self._committed.wait()
            self._committed.clear()
            try:
                await asyncio.to_thread(self.after_commit)
            except Exception:  # trouble is logged; the sweeper re-drives
                log.exception("intake: after-commit step failed")


def _settle(future: asyncio.Future, error: Exception | None) -> None:
    if future.done():  # the client went away; the rows are committed all the same
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)

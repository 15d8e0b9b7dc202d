"""Durable intake: raw webhook items committed by ONE writer with group commit.

SQLite has one writer; per-request commits from many threads reach ~1,300 req/s. Here every
request puts its rows on a queue and waits; a single task inserts everything waiting in one
transaction and only then wakes those requests, so each 200 still follows its own commit.

A database that hangs or fails must cost a bounded wait, not a frozen intake: a request waits
at most INTAKE_STORE_TIMEOUT for its commit, then gets IntakeUnavailable (503, Meta retries).
An insert that hangs cannot be cancelled (it runs in a thread), so the writer waits for it,
keeping its order (store.db bounds how long: connect, statement and answer timeouts), and
skips the requests that gave up meanwhile. While it is stuck, at most INTAKE_MAX_WAITING
requests queue; more are refused at once. Rows committed after their request gave up are
harmless: Meta's redelivery is ignored by the unique provider id.

A request whose rows the database refuses (rather than fails to answer) is stored row by row:
a refused row is kept FAILED as its raw body alone (`refused_row`), so that only a database
that cannot store anything answers 503.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bot.core import tunables
from bot.whatsapp.payloads import body_digest
from store.db import Database, is_unavailable
from store.errors import describe_error
from store.inbound import insert_events
from store.models import EventStatus

log = logging.getLogger(__name__)

Rows = list[dict[str, Any]]


class IntakeUnavailable(Exception):
    """The rows were not committed in time, or the database refused them: answer 503, so that
    Meta delivers the webhook again later (a copy already stored is ignored by its unique id)."""


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
        self._busy_since: float | None = None  # loop time the running commit started

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write_loop(), name="intake-writer")]
        if self.after_commit is not None:
            self._tasks.append(asyncio.create_task(self._after_loop(), name="intake-dispatch"))

    async def store(self, rows: Rows) -> None:
        """Returns once `rows` are committed. Raises IntakeUnavailable when they were not
        committed within INTAKE_STORE_TIMEOUT or the database failed to store them."""
        loop = asyncio.get_running_loop()
        if self._stuck(loop) and self._queue.qsize() >= tunables.INTAKE_MAX_WAITING:
            raise IntakeUnavailable("the database is not answering; try again later")
        future = loop.create_future()
        expiry = loop.call_later(tunables.INTAKE_STORE_TIMEOUT, _give_up, future)
        self._queue.put_nowait((rows, future))
        try:
            await future
        finally:
            expiry.cancel()

    def _stuck(self, loop: asyncio.AbstractEventLoop) -> bool:
        started = self._busy_since
        return started is not None and loop.time() - started > tunables.INTAKE_STORE_TIMEOUT

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < self.max_batch:
                batch.append(self._queue.get_nowait())
            try:
                await self._commit(batch)
            except Exception:  # the one writer must outlive anything
                log.exception("intake: the writer failed a batch")
                for _, future in batch:
                    _settle(future, _unavailable(None))

    async def _commit(self, batch: list[tuple[Rows, asyncio.Future]]) -> None:
        batch = [item for item in batch if not item[1].done()]  # skip requests that gave up
        if not batch:
            return
        self._busy_since = asyncio.get_running_loop().time()
        try:
            await asyncio.to_thread(self._insert, [row for rows, _ in batch for row in rows])
        except Exception as exc:
            self._busy_since = None
            await self._failed(batch, exc)
            return
        self._busy_since = None
        for _, future in batch:
            _settle(future, None)
        self._committed.set()

    async def _failed(self, batch: list[tuple[Rows, asyncio.Future]], error: Exception) -> None:
        if len(batch) > 1 and not is_unavailable(error):
            for item in batch:  # one bad request must not fail the others
                await self._commit([item])
            return
        if not is_unavailable(error):  # one request whose rows the database refused
            rows, future = batch[0]
            try:
                await asyncio.to_thread(self._insert_each, rows)
            except Exception as again:
                error = again
            else:
                _settle(future, None)
                self._committed.set()
                return
        # One line, no traceback: a database error's traceback quotes the rows it refused.
        log.error("intake: could not store %d webhook(s): %s", len(batch), describe_error(error))
        for _, future in batch:
            _settle(future, _unavailable(error))

    def _insert(self, rows: Rows) -> None:
        with self.db.transaction() as session:
            insert_events(session, rows=rows)

    def _insert_each(self, rows: Rows) -> None:
        """Stores `rows` one by one; a row the database refuses is stored FAILED as its raw
        body alone, with the reason, so that one odd item never takes its webhook down."""
        for row in rows:
            try:
                self._insert([row])
            except Exception as exc:
                if is_unavailable(exc):
                    raise
                log.error("intake: the database refused an item: %s", describe_error(exc))
                self._insert([refused_row(row, exc)])

    async def _after_loop(self) -> None:
        while True:
            await self._committed.wait()
            self._committed.clear()
            try:
                await asyncio.to_thread(self.after_commit)
            except Exception:  # trouble is logged; the sweeper re-drives
                log.exception("intake: after-commit step failed")


def refused_row(row: dict[str, Any], error: Exception) -> dict[str, Any]:
    """`row` reduced to what any database keeps (its raw body, keyed by its digest), FAILED
    with the reason the database gave."""
    raw = row["raw_body"]
    return {"provider": row["provider"], "kind": row["kind"], "contact_key": None,
            "provider_event_id": body_digest(raw),
            "occurred_at": None, "raw_body": raw, "status": EventStatus.FAILED,
            "error": f"the database refused this item: {describe_error(error)}"}


def _unavailable(cause: Exception | None) -> IntakeUnavailable:
    error = IntakeUnavailable("the database could not store the webhook; try again later")
    error.__cause__ = cause
    return error


def _give_up(future: asyncio.Future) -> None:
    if not future.done():  # the writer skips it, or ignores its commit
        seconds = tunables.INTAKE_STORE_TIMEOUT
        future.set_exception(IntakeUnavailable(f"not stored within {seconds:g} s; try again"))


def _settle(future: asyncio.Future, error: Exception | None) -> None:
    if future.done():  # gave up or went away; the rows are committed all the same
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)

"""The intake answers within a bounded time when it cannot store, and recovers by itself.

Unit level: a real SQLite database behind a gate that the test closes (the database hangs) or
sets to fail. Over HTTP: the app on a real PostgreSQL behind a proxy that the test turns into a
black hole.
"""

import asyncio
import hashlib
import shutil
import threading
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import exc, func, select
from sqlalchemy.engine import make_url

from bot.core import tunables
from bot.webhooks.intake import IntakeUnavailable, IntakeWriter
from store.db import Database
from store.models import InboundEvent
from tests.bot.whatsapp_kit import TEXT, live, make_settings, message_body, post
from tests.store.blackhole import tcp_proxy

BOUND = 0.5  # INTAKE_STORE_TIMEOUT in the unit tests
SLACK = 0.4  # what the event loop and a thread switch may add


class GatedDatabase:
    """A real database whose transactions wait while the gate is closed, and raise `error`
    while it is set; it counts the transactions begun."""

    def __init__(self, real: Database) -> None:
        self.real = real
        self.gate = threading.Event()
        self.gate.set()
        self.error: Exception | None = None
        self.begun = 0

    @contextmanager
    def transaction(self, **kwargs):
        self.begun += 1
        self.gate.wait(30)
        if self.error is not None:
            raise self.error
        with self.real.transaction(**kwargs) as session:
            yield session

    def stored(self) -> set[str]:
        with self.real.transaction(readonly=True) as session:
            return set(session.scalars(select(InboundEvent.provider_event_id)))


@pytest.fixture
def gated(tmp_path, sqlite_template, monkeypatch):
    monkeypatch.setattr(tunables, "INTAKE_STORE_TIMEOUT", BOUND)
    path = tmp_path / "opsbot.db"
    shutil.copy(sqlite_template, path)
    real = Database(f"sqlite:///{path}")
    database = GatedDatabase(real)
    yield database
    database.gate.set()  # no thread may stay stuck behind the gate
    real.dispose()


def rows(wamid: str, **extra) -> list[dict]:
    return [{"provider": "whatsapp", "provider_event_id": wamid, "kind": "message",
             "contact_key": "34600111222", "occurred_at": None, "raw_body": b"{}", **extra}]


def run_with_writer(database: GatedDatabase, scenario) -> None:
    async def main() -> None:
        writer = IntakeWriter(database, max_batch=tunables.INTAKE_MAX_BATCH)
        writer.start()
        try:
            await scenario(writer)
        finally:
            database.gate.set()  # lets a hung insert end before the loop's executor shuts down
            await writer.stop()

    asyncio.run(main())


async def timed(coroutine) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        await coroutine
    except Exception as error:  # noqa: BLE001 - returned to the test
        return error, time.monotonic() - started
    return None, time.monotonic() - started


def test_a_hanging_database_gets_unavailable_within_the_bound_then_recovers(gated):
    async def scenario(writer: IntakeWriter) -> None:
        gated.gate.clear()
        error, seconds = await timed(writer.store(rows("wamid.HUNG")))
        assert isinstance(error, IntakeUnavailable), error
        assert BOUND <= seconds < BOUND + SLACK
        gated.gate.set()  # the database answers again
        error, seconds = await timed(writer.store(rows("wamid.AFTER")))
        assert error is None
        assert seconds < BOUND

    run_with_writer(gated, scenario)
    # The hung insert committed after its request gave up: harmless (a redelivery is ignored).
    assert gated.stored() == {"wamid.HUNG", "wamid.AFTER"}


def test_requests_behind_a_hung_insert_time_out_each_and_are_skipped(gated):
    async def scenario(writer: IntakeWriter) -> None:
        gated.gate.clear()
        first = asyncio.create_task(timed(writer.store(rows("wamid.HUNG"))))
        await asyncio.sleep(0.1)  # the writer is inside the hung insert
        queued = [asyncio.create_task(timed(writer.store(rows(f"wamid.Q{n}")))) for n in range(5)]
        for error, seconds in await asyncio.gather(first, *queued):
            assert isinstance(error, IntakeUnavailable), error
            assert seconds < BOUND + SLACK
        gated.gate.set()
        error, _ = await timed(writer.store(rows("wamid.AFTER")))
        assert error is None

    run_with_writer(gated, scenario)
    assert gated.stored() == {"wamid.HUNG", "wamid.AFTER"}  # the ones that gave up waiting
    assert gated.begun == 2


def test_a_stuck_writer_refuses_at_once_beyond_the_queue_bound(gated, monkeypatch):
    monkeypatch.setattr(tunables, "INTAKE_MAX_WAITING", 3)

    async def scenario(writer: IntakeWriter) -> None:
        gated.gate.clear()
        waiting = [asyncio.create_task(timed(writer.store(rows("wamid.HUNG"))))]
        await asyncio.sleep(BOUND + 0.1)  # the insert has hung for longer than the bound
        waiting += [asyncio.create_task(timed(writer.store(rows(f"wamid.Q{n}"))))
                    for n in range(3)]
        await asyncio.sleep(0)
        error, seconds = await timed(writer.store(rows("wamid.REFUSED")))
        assert isinstance(error, IntakeUnavailable), error
        assert seconds < 0.05
        await asyncio.gather(*waiting)
        gated.gate.set()
        await asyncio.sleep(0.1)  # the hung insert returns; the writer drops who gave up
        error, _ = await timed(writer.store(rows("wamid.AFTER")))
        assert error is None

    run_with_writer(gated, scenario)
    assert gated.stored() == {"wamid.HUNG", "wamid.AFTER"}


def test_a_failing_database_gets_unavailable_and_the_writer_goes_on(gated):
    failure = exc.OperationalError("INSERT", {}, Exception("server closed the connection"))

    async def scenario(writer: IntakeWriter) -> None:
        gated.gate.clear()
        first = asyncio.create_task(timed(writer.store(rows("wamid.F0"))))
        await asyncio.sleep(0.1)
        queued = [asyncio.create_task(timed(writer.store(rows(f"wamid.F{n}"))))
                  for n in range(1, 6)]
        await asyncio.sleep(0.05)
        gated.error = failure
        gated.gate.set()
        for error, seconds in await asyncio.gather(first, *queued):
            assert isinstance(error, IntakeUnavailable), error
            assert error.__cause__ is failure
            assert seconds < BOUND
        gated.error = None
        error, _ = await timed(writer.store(rows("wamid.AFTER")))
        assert error is None

    run_with_writer(gated, scenario)
    # One transaction for the hung request, ONE for the five queued behind it (a database that
    # is down is not asked again row by row), one after.
    assert gated.begun == 3
    assert gated.stored() == {"wamid.AFTER"}


def test_a_request_the_database_refuses_fails_alone(gated):
    async def scenario(writer: IntakeWriter) -> None:
        gated.gate.clear()
        first = asyncio.create_task(timed(writer.store(rows("wamid.G0"))))
        await asyncio.sleep(0.1)
        bad = asyncio.create_task(timed(writer.store(rows("wamid.BAD", raw_body=None))))
        good = asyncio.create_task(timed(writer.store(rows("wamid.G1"))))
        await asyncio.sleep(0.05)
        gated.gate.set()
        (first_error, _), (bad_error, _), (good_error, _) = await asyncio.gather(first, bad, good)
        assert first_error is None and good_error is None
        assert isinstance(bad_error, IntakeUnavailable)

    run_with_writer(gated, scenario)
    assert gated.stored() == {"wamid.G0", "wamid.G1"}


def test_a_row_the_database_refuses_is_kept_failed_as_its_raw_body(gated):
    odd = rows("wamid.ODD", occurred_at="yesterday", raw_body=b'{"odd": true}')[0]

    async def scenario(writer: IntakeWriter) -> None:
        error, _ = await timed(writer.store([rows("wamid.FINE")[0], odd]))
        assert error is None  # answered 200: nothing is lost, nothing is redelivered forever

    run_with_writer(gated, scenario)
    digest = "sha256:" + hashlib.sha256(b'{"odd": true}').hexdigest()
    assert gated.stored() == {"wamid.FINE", digest}
    with gated.real.transaction(readonly=True) as session:
        kept = session.scalars(select(InboundEvent).where(
            InboundEvent.provider_event_id == digest)).one()
        assert kept.status == "failed" and kept.raw_body == b'{"odd": true}'
        assert kept.error.startswith("the database refused this item: ")


# --- Over HTTP, on PostgreSQL behind a proxy -----------------------------------------------------

ANSWERS_WITHIN = 2.0 + 1.5  # INTAKE_STORE_TIMEOUT below, plus the request's own time


@pytest.fixture
def proxied_app(tmp_path, postgres_database, redis_url, monkeypatch):
    monkeypatch.setattr(tunables, "INTAKE_STORE_TIMEOUT", 2.0)
    url = make_url(postgres_database)
    with tcp_proxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        with live(make_settings(tmp_path, proxied, redis_url)) as (services, app_url):
            yield proxy, services, app_url


def timed_post(url: str, wamid: str):
    started = time.monotonic()
    response = post(url, message_body(TEXT, wamid=wamid))
    return response.status_code, time.monotonic() - started


def test_a_black_holed_postgresql_gets_503_in_time_and_200_once_back(proxied_app):
    proxy, services, url = proxied_app
    assert timed_post(url, "wamid.BEFORE")[0] == 200
    proxy.black_hole()
    for n in range(3):
        status, seconds = timed_post(url, f"wamid.DURING{n}")
        assert status == 503
        assert seconds < ANSWERS_WITHIN
    proxy.forward()
    answers = []
    deadline = time.monotonic() + 15  # the insert stuck in the black hole gives up first
    while time.monotonic() < deadline:
        answers.append(timed_post(url, f"wamid.AFTER{len(answers)}"))
        if answers[-1][0] == 200:
            break
    assert answers[-1][0] == 200, answers
    assert all(seconds < ANSWERS_WITHIN for _, seconds in answers), answers
    assert all(status in (200, 503) for status, _ in answers), answers
    status, seconds = timed_post(url, "wamid.LAST")
    assert status == 200 and seconds < 1.0
    with services.db.transaction(readonly=True) as session:
        stored = session.scalar(select(func.count()).select_from(InboundEvent).where(
            InboundEvent.provider_event_id.in_(["wamid.BEFORE", "wamid.LAST"])))
    assert stored == 2

"""Delivering outgoing webhooks (Standard Webhooks) to the CRM's endpoints.

A round claims due deliveries (`store.webhooks.claim_deliveries`: the head of each queue of
one endpoint and task, and what is queued behind it), sends them after the commit, each queue
in order on one thread and the queues side by side, then records every attempt in one
transaction. A 2xx delivers; 410 Gone disables the endpoint (its pending deliveries are
cancelled); anything else (an error, a timeout) is retried by `retry_wait`'s schedule, and
stops its queue until then, so that a receiver never sees a task's events out of order.
Nothing here talks to Redis: the worker asks for delivery jobs (bot.worker.drains).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import urllib3
from standardwebhooks import Webhook

from bot.core import tunables
from store.db import Database
from store.types import utcnow
from store.webhooks import (
    Claimed,
    DeliveryStatus,
    Outcome,
    claim_deliveries,
    has_due_deliveries,
    held_deliveries,
    record_outcomes,
    release_deliveries,
)

log = logging.getLogger(__name__)

Random = Callable[[], float]  # a number in [0, 1): random.random, or a fixed one in tests


def retry_waits() -> tuple[int, ...]:
    """The nominal wait (seconds) before each retry: WEBHOOK_RETRY_WAITS, then one every
    WEBHOOK_RETRY_EVERY while the total stays within WEBHOOK_GIVE_UP_AFTER."""
    waits, limit = list(tunables.WEBHOOK_RETRY_WAITS), tunables.WEBHOOK_GIVE_UP_AFTER
    while sum(waits) + tunables.WEBHOOK_RETRY_EVERY <= limit.total_seconds():
        waits.append(tunables.WEBHOOK_RETRY_EVERY)
    return tuple(waits)


def retry_wait(attempts: int, rand: Random) -> timedelta | None:
    """The wait after a delivery's `attempts`-th failed attempt, with +-WEBHOOK_JITTER of
    jitter; None once the schedule is over (the delivery fails for good)."""
    waits = retry_waits()
    if attempts > len(waits):
        return None
    jitter = 1 + tunables.WEBHOOK_JITTER * (2 * rand() - 1)
    return timedelta(seconds=waits[max(attempts, 1) - 1] * jitter)


@dataclass(frozen=True)
class Answer:
    """What one request got: a status code and the start of the body, or an error."""

    status_code: int | None
    head: str | None
    error: str | None
    latency_ms: int


def outcome_of(delivery: Claimed, answer: Answer, *, now: datetime, rand: Random) -> Outcome:
    """The attempt to record for `answer`, and what follows it."""
    attempt = {"delivery_id": delivery.id, "at": now, "status_code": answer.status_code,
               "latency_ms": answer.latency_ms, "response_head": answer.head,
               "error": answer.error}
    code = answer.status_code
    if code is not None and 200 <= code < 300:
        return Outcome(status=DeliveryStatus.DELIVERED, **attempt)
    if code == 410:
        return Outcome(status=DeliveryStatus.FAILED, gone=True, **attempt)
    wait = retry_wait(delivery.attempts + 1, rand)
    if wait is None:
        return Outcome(status=DeliveryStatus.FAILED, **attempt)
    return Outcome(status=DeliveryStatus.PENDING, next_attempt_at=now + wait, **attempt)


def signed_request(delivery: Claimed, *, sent_at: datetime) -> tuple[bytes, dict[str, str]]:
    """The body and the Standard Webhooks headers of one attempt (signed at `sent_at`)."""
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False)
    sent_at = sent_at.astimezone(UTC)
    signature = Webhook(delivery.secret).sign(delivery.message_id, sent_at, body)
    return body.encode(), {"webhook-id": delivery.message_id,
                           "webhook-timestamp": str(int(sent_at.timestamp())),
                           "webhook-signature": signature,
                           "content-type": "application/json",
                           "user-agent": "opsbot-webhooks/1"}


def post(client: urllib3.PoolManager, delivery: Claimed) -> Answer:
    """One attempt; never raises. The timestamp signed is the real time of sending (receivers
    check it against their clock)."""
    body, headers = signed_request(delivery, sent_at=datetime.now(UTC))
    started = time.monotonic()
    try:
        response = client.request("POST", delivery.url, body=body, headers=headers)
    except urllib3.exceptions.HTTPError as exc:
        return Answer(None, None, f"{type(exc).__name__}: {exc}"[:500], _ms(started))
    head = response.data[:tunables.WEBHOOK_ANSWER_HEAD * 4].decode(errors="replace")
    return Answer(response.status, head[:tunables.WEBHOOK_ANSWER_HEAD], None, _ms(started))


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


@dataclass
class Round:
    """What one round did: attempts recorded, deliveries freed untried."""

    outcomes: list[Outcome] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    claimed: int = 0

    @property
    def delivered(self) -> int:
        return sum(o.status == DeliveryStatus.DELIVERED for o in self.outcomes)


@dataclass
class Sender:
    """What sends a round: the HTTP client and the threads, kept for the whole job."""

    client: urllib3.PoolManager
    pool: ThreadPoolExecutor
    rand: Random = random.random

    @classmethod
    def open(cls, *, rand: Random = random.random) -> Sender:
        # urllib3 rather than httpx here: a third of the CPU per request, and a worker's
        # fan-out is bound by it (bench/api_bench.py).
        threads = tunables.WEBHOOK_THREADS
        client = urllib3.PoolManager(num_pools=64, maxsize=threads, block=False,
                                     timeout=urllib3.Timeout(tunables.WEBHOOK_TIMEOUT),
                                     retries=False)
        return cls(client, ThreadPoolExecutor(threads, thread_name_prefix="webhooks"), rand)

    def close(self) -> None:
        self.pool.shutdown()
        self.client.clear()


def deliver_round(db: Database, sender: Sender, *, owner: str, now: datetime) -> Round:
    """Claims due deliveries for `owner`, sends them (queues in parallel, each in order) and
    records the attempts; returns what it did."""
    with db.transaction() as session:
        claimed = claim_deliveries(session, owner=owner, limit=tunables.WEBHOOK_BATCH,
                                   follow=tunables.WEBHOOK_FOLLOW, now=now)
    done = Round(claimed=len(claimed))
    if not claimed:
        return done
    gone: set[int] = set()
    chains = [sender.pool.submit(_send_queue, sender, queue, gone, now)
              for queue in _queues(claimed)]
    for chain in chains:
        outcomes, released = chain.result()
        done.outcomes += outcomes
        done.released += released
    with db.transaction() as session:
        record_outcomes(session, outcomes=done.outcomes, released=done.released, owner=owner,
                        now=now)
    return done


def _queues(claimed: Iterable[Claimed]) -> list[list[Claimed]]:
    queues: dict[tuple[int, int | None], list[Claimed]] = {}
    for delivery in claimed:
        queues.setdefault((delivery.endpoint_id, delivery.task_id), []).append(delivery)
    return list(queues.values())


def _send_queue(sender: Sender, queue: list[Claimed], gone: set[int],
                now: datetime) -> tuple[list[Outcome], list[int]]:
    """Sends one queue in order until an attempt fails; the rest is released untried."""
    outcomes: list[Outcome] = []
    for index, delivery in enumerate(queue):
        if delivery.endpoint_id in gone:
            return outcomes, [d.id for d in queue[index:]]
        outcome = outcome_of(delivery, post(sender.client, delivery), now=now, rand=sender.rand)
        outcomes.append(outcome)
        if outcome.gone:
            gone.add(delivery.endpoint_id)
        if outcome.status != DeliveryStatus.DELIVERED:
            return outcomes, [d.id for d in queue[index + 1:]]
    return outcomes, []


def deliver_due(db: Database, *, owner: str, seconds: float | None,
                now: datetime | None = None, sender: Sender | None = None) -> int:
    """Rounds while deliveries are due, for up to `seconds` (None: until none is left);
    returns how many attempts were made. `now` fixes the clock (tests)."""
    own_sender = sender is None
    sender = sender or Sender.open()
    deadline = None if seconds is None else time.monotonic() + seconds
    attempts = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            done = deliver_round(db, sender, owner=owner, now=now or utcnow())
            attempts += len(done.outcomes)
            if not done.outcomes:
                break
    finally:
        if own_sender:
            sender.close()
    return attempts


def has_due(db: Database, *, now: datetime) -> bool:
    """Whether a delivery is due and free (a delivery job has work)."""
    with db.transaction(readonly=True) as session:
        return has_due_deliveries(session, now=now)


def free_lost_claims(db: Database, *, job_exists: Callable[[str], bool],
                     now: datetime) -> list[int]:
    """Frees the deliveries claimed more than WEBHOOK_CLAIM_GRACE ago by a job that is gone;
    returns their ids."""
    with db.transaction(readonly=True) as session:
        held = held_deliveries(session, before=now - tunables.WEBHOOK_CLAIM_GRACE)
    lost = {owner: ids for owner, ids in held.items() if not job_exists(owner)}
    if lost:
        with db.transaction() as session:
            for owner, ids in lost.items():
                release_deliveries(session, ids=ids, owner=owner)
    return sorted(i for ids in lost.values() for i in ids)

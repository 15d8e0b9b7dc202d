"""The benches' load generator: a raw-socket asyncio HTTP/1.1 client, keep-alive connections.

Requests are built (and signed) before the clock starts; sending one costs a socket write and
reading the answer's head, several times less than an HTTP client library (httpx at 300
requests/s took most of a core on this 2-core machine, a core the app under test lost).
"""

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.inbound import whatsapp_signature


@dataclass(frozen=True)
class Result:
    status: int
    latency: float  # seconds from the scheduled send (open loop) or the send (closed loop)
    sent_at: float  # wall clock (time.time()) of the scheduled send, or of the send


def signed_post(body: bytes, *, host: str, secret: str) -> bytes:
    """The bytes of a POST /webhooks/whatsapp carrying `body`, signed as Meta signs it."""
    head = (f"POST /webhooks/whatsapp HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\n"
            f"X-Hub-Signature-256: {whatsapp_signature(body, secret)}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def run(port: int | Sequence[int], requests: list[bytes], *, concurrency: int,
        rate: float | None = None) -> tuple[list[Result], float]:
    """Sends `requests` in order over `concurrency` connections, as fast as they go (closed
    loop) or request i at start + i/`rate` whatever the answers (open loop); returns each
    request's result, in order, and the seconds it all took. With several ports (web
    processes), the connections are spread over them as a load balancer would."""
    ports = [port] if isinstance(port, int) else list(port)
    return asyncio.run(_drive(ports, requests, concurrency=concurrency, rate=rate))


async def _drive(ports: list[int], requests: list[bytes], *, concurrency: int,
                 rate: float | None) -> tuple[list[Result], float]:
    jobs: asyncio.Queue = asyncio.Queue()
    results: list[Result | None] = [None] * len(requests)
    connections = [asyncio.create_task(_connection(ports[i % len(ports)], jobs, results))
                   for i in range(concurrency)]
    began, began_wall = time.perf_counter(), time.time()
    for i, request in enumerate(requests):
        due = None
        if rate:
            due = began + i / rate
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
        jobs.put_nowait((i, request, due, due and began_wall + i / rate))
    for _ in connections:
        jobs.put_nowait(None)
    await asyncio.gather(*connections)
    return results, time.perf_counter() - began


async def _connection(port: int, jobs: asyncio.Queue, results: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (job := await jobs.get()) is not None:
            i, request, due, due_wall = job
            start, wall = due or time.perf_counter(), due_wall or time.time()
            status = await _exchange(reader, writer, request)
            results[i] = Result(status, time.perf_counter() - start, wall)
    finally:
        writer.close()


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bytes) -> int:
    writer.write(request)
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return int(status_line.split()[1])

"""The shared base of the local fake API servers: start/stop, recording, scripted failures.

Each fake is a stdlib ``ThreadingHTTPServer`` on 127.0.0.1, port 0, served from a daemon
thread. Subclasses only translate one recorded request into one ``Reply`` (``route``) and
say what a failure looks like on their API (``error_reply``).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

Predicate = Callable[[list["Recorded"]], Any]


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request a fake received, with its body parsed and the status it was answered with.

    ``headers`` keys are lower-case. ``params`` merges query, form and JSON body the way the
    API itself reads them (the Telegram fake also decodes JSON-encoded form values).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: dict | None
    form: dict | None
    at: datetime
    params: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    status: int = 0

    @property
    def name(self) -> str:
        """The last path segment: the API method (`chat.postMessage`, `sendMessage`, `messages`)."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Reply:
    """What a fake answers: status, JSON-able body (or raw bytes) and extra headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


@dataclass(slots=True)
class _Failure:
    remaining: int
    status: int
    retry_after: int | None
    match: str | None
    body: dict | None


class FakeServer:
    """Base of the fakes: lifecycle, thread-safe recording, ``fail_next`` and ``wait_for``.

    Use as ``with FakeX() as fake:`` or ``fake.start()`` / ``fake.stop()``. ``delay`` (seconds)
    is slept before every answer to simulate a slow API.
    """

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self._requests: list[Recorded] = []
        self._failures: list[_Failure] = []
        self._changed = threading.Condition()
        self._httpd: _Httpd | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind 127.0.0.1 on a free port and serve from a daemon thread; returns self."""
        if self._httpd is not None:
            return self
        self._httpd = _Httpd(("127.0.0.1", 0), _Handler, fake=self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-{self._httpd.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open client connections and join every server thread."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        httpd.shutdown()
        thread.join()
        httpd.close_connections()
        httpd.server_close()  # joins the per-connection handler threads
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL such as ``http://127.0.0.1:54321`` (only while started)."""
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._httpd.server_port}"

    @property
    def connections_opened(self) -> int:
        """How many connections clients opened so far (a client that keeps them alive opens
        one for many requests)."""
        return self._httpd.connections_opened if self._httpd is not None else 0

    # recording -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[Recorded]:
        """A snapshot of every request received so far, oldest first."""
        with self._changed:
            return list(self._requests)

    def calls(self, name: str) -> list[Recorded]:
        """Requests whose API method (last path segment) is ``name``."""
        return [r for r in self.requests if r.name == name]

    def reset(self) -> None:
        """Forget recorded requests and pending scripted failures (server state is kept)."""
        with self._changed:
            self._requests.clear()
            self._failures.clear()

    def wait_for(self, predicate: Predicate, timeout: float = 5.0) -> Any:
        """Block until ``predicate(requests)`` is truthy and return its value.

        Raises TimeoutError listing what was received, so a failing test says why.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = predicate(list(self._requests))
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [f"{r.method} {r.path} -> {r.status}" for r in self._requests]
                    raise TimeoutError(f"{type(self).__name__}: condition not met; got {seen}")
                self._changed.wait(left)

    # scripted failures ---------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        retry_after: int | None = None,
        match: str | None = None,
        *,
        body: dict | None = None,
    ) -> None:
        """Answer the next ``n`` requests whose path contains ``match`` (all if None) with
        ``status`` in this API's error format; ``body`` replaces the error body."""
        with self._changed:
            self._failures.append(_Failure(n, status, retry_after, match, body))

    def _take_failure(self, rec: Recorded) -> _Failure | None:
        with self._changed:
            for failure in self._failures:
                if failure.match is None or failure.match in rec.path:
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                    return failure
        return None

    # one request ---------------------------------------------------------------------------

    def handle(self, rec: Recorded) -> Reply:
        """Answer one request (scripted failure or ``route``) and record it with its status."""
        if self.delay:
            time.sleep(self.delay)
        failure = self._take_failure(rec)
        try:
            if failure is not None:
                reply = self.error_reply(failure.status, failure.retry_after, failure.body)
            else:
                reply = self.route(rec)
        except Exception as exc:  # a bug in a fake must show up in the test, not hang it
            reply = Reply(500, {"error": f"fake crashed: {exc!r}"})
        with self._changed:
            self._requests.append(replace(rec, status=reply.status))
            self._changed.notify_all()
        return reply

    def parse_params(self, rec: Recorded) -> dict[str, Any]:
        """How this API reads parameters; default: query, then form, then JSON body."""
        return {**rec.query, **(rec.form or {}), **(rec.json or {})}

    def route(self, rec: Recorded) -> Reply:
        raise NotImplementedError

    def error_reply(self, status: int, retry_after: int | None, body: dict | None) -> Reply:
        raise NotImplementedError


class _Httpd(ThreadingHTTPServer):
    """Tracks open connections so ``stop()`` can close keep-alive sockets and join threads."""

    daemon_threads = False
    block_on_close = True
    # socketserver's default backlog is 5: a burst of workers opening connections at once
    # overflowed it (the kernel's ListenOverflows rose by ~40 in one burst test) and sends
    # failed with resets that the real APIs, behind their own servers, do not give.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, *, fake: FakeServer) -> None:
        super().__init__(address, handler)
        self.fake = fake
        self.open_connections: set[socket.socket] = set()
        self.connections_opened = 0
        self.connections_lock = threading.Lock()

    def close_connections(self) -> None:
        with self.connections_lock:
            for conn in list(self.open_connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: with Nagle's algorithm the second waits for the
    # client's delayed ACK (~40 ms) on every kept-alive reply.
    disable_nagle_algorithm = True
    server: _Httpd

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)
            self.server.connections_opened += 1

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.open_connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; the recording is the log

    def do_GET(self) -> None:
        self._answer()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _answer(self) -> None:
        fake = self.server.fake
        rec = parse_request(self.command, self.path, dict(self.headers.items()), self._read_body())
        rec = replace(rec, params=fake.parse_params(rec))
        reply = fake.handle(rec)
        payload = reply.encoded()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return _read_chunked(self.rfile)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""


def _read_chunked(stream: Any) -> bytes:
    chunks = []
    while True:
        size = int(stream.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            stream.readline()
            return b"".join(chunks)
        chunks.append(stream.read(size))
        stream.readline()


def parse_request(method: str, target: str, headers: dict[str, str], body: bytes) -> Recorded:
    """Build a ``Recorded`` from raw request parts, parsing JSON, urlencoded and multipart."""
    split = urlsplit(target)
    lower = {k.lower(): v for k, v in headers.items()}
    ctype = lower.get("content-type", "").lower()
    json_body, form, files = None, None, {}
    if "json" in ctype or (not ctype and body[:1] in (b"{", b"[")):
        json_body = _load_json(body)
    elif "x-www-form-urlencoded" in ctype:
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    elif "multipart/form-data" in ctype:
        form, files = parse_multipart(lower["content-type"], body)
    return Recorded(
        method=method,
        path=split.path,
        query=dict(parse_qsl(split.query, keep_blank_values=True)),
        headers=lower,
        body=body,
        json=json_body,
        form=form,
        at=datetime.now(UTC),
        files=files,
    )


def _load_json(body: bytes) -> dict | None:
    try:
        value = json.loads(body or b"null")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """Split a multipart/form-data body into text fields and files (by part name)."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            files[str(name)] = payload
        else:
            fields[str(name)] = payload.decode("utf-8", "replace")
    return fields, files

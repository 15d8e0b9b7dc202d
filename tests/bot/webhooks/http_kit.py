"""Raw HTTP/1.1 over a socket (what an attacker sends, which httpx will not), and the server's
own log records for the assertion that no request ended in a traceback."""

import logging
import select
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

ANSWER_WITHIN = 3.0  # seconds; a refusal comes at once, a server that reads on never answers


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=ANSWER_WITHIN)
    sock.settimeout(ANSWER_WITHIN)
    return sock


def _head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: opsbot.test", *(f"{k}: {v}" for k, v in
                                                              headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def answer_of(sock: socket.socket) -> Answer:
    """The answer on `sock` (its body by Content-Length); raises TimeoutError when none comes."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += _more(sock, data)
    head, body = data.split(b"\r\n\r\n", 1)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        body += _more(sock, body)
    return Answer(int(status_line.split(" ", 2)[1]), headers, body)


def _more(sock: socket.socket, so_far: bytes) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError(f"closed in the middle of the answer: {so_far!r}")
    return chunk


def post_declaring(url: str, path: str, headers: dict[str, str], *, declared: int,
                   sent: bytes = b"{") -> Answer:
    """Declares a `declared`-byte body, sends only `sent` of it and waits for the answer."""
    with _connect(url) as sock:
        sock.sendall(_head(path, {**headers, "Content-Length": str(declared)}) + sent)
        return answer_of(sock)


def post_chunked(url: str, path: str, headers: dict[str, str], *, total: int,
                 chunk: int = 64 * 1024) -> tuple[int, int]:
    """Streams up to `total` bytes in chunks, never the closing one, stopping as soon as the
    server answers; returns (status code, bytes sent)."""
    piece = f"{chunk:x}\r\n".encode() + b"a" * chunk + b"\r\n"
    with _connect(url) as sock:
        sock.sendall(_head(path, {**headers, "Transfer-Encoding": "chunked"}))
        sent = 0
        while sent < total and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(piece)
            except OSError:  # the server closed the connection: read its answer
                break
            sent += chunk
        return answer_of(sock).status, sent


@contextmanager
def server_log(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """caplog also gets uvicorn's records ("Exception in ASGI application"), which do not
    propagate to the root logger. Enter it once the server has started."""
    logger = logging.getLogger("uvicorn")
    logger.addHandler(caplog.handler)
    try:
        yield
    finally:
        logger.removeHandler(caplog.handler)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The records at ERROR and above, or carrying a traceback."""
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records
            if r.levelno >= logging.ERROR or r.exc_info]

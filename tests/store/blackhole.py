"""A TCP proxy that a test can turn into a black hole: a server that accepts and never answers.

`TcpProxy(("127.0.0.1", 5432))` listens on 127.0.0.1, port 0, and forwards to the target.
`black_hole()`: it still accepts and reads, but forwards nothing and answers nothing (what a
stuck PostgreSQL behind PgBouncer or a load balancer looks like); the connections it carried
stay dead from then on, as stuck sockets do. `forward()`: new connections work again.
`TcpProxy(None)` is a black hole from the start (a Redis that never answers).
"""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class _Link:
    def __init__(self, client: socket.socket, server: socket.socket | None) -> None:
        self.client, self.server = client, server
        self.dead = server is None

    def close(self) -> None:
        for sock in (self.client, self.server):
            if sock is not None:
                _close(sock)


class TcpProxy:
    def __init__(self, target: tuple[str, int] | None) -> None:
        self.target = target
        self._holing = target is None
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def black_hole(self) -> None:
        with self._lock:
            self._holing = True
            for link in self._links:
                link.dead = True

    def forward(self) -> None:
        with self._lock:
            self._holing = self.target is None

    def close(self) -> None:
        _close(self._listener)
        with self._lock:
            for link in self._links:
                link.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                server = None if self._holing else socket.create_connection(self.target)
                link = _Link(client, server)
                self._links.append(link)
            self._pump(link, client, server)
            if server is not None:
                self._pump(link, server, client)

    def _pump(self, link: _Link, source: socket.socket, sink: socket.socket | None) -> None:
        def run() -> None:
            try:
                while data := source.recv(65536):
                    if not link.dead:
                        sink.sendall(data)
            except OSError:
                pass
            if not link.dead:
                link.close()

        threading.Thread(target=run, name="proxy-pump", daemon=True).start()


def _close(sock: socket.socket) -> None:
    with suppress(OSError):  # not connected, or closed already
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@contextmanager
def tcp_proxy(target: tuple[str, int] | None) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target)
    try:
        yield proxy
    finally:
        proxy.close()


def run_bounded(seconds: float, call) -> tuple[object, BaseException | None, float]:
    """Runs `call()` in a daemon thread: (its result, what it raised, seconds it took), or
    raises AssertionError when it has not returned within `seconds` (the thread is left)."""
    outcome: dict = {}

    def run() -> None:
        started = time.monotonic()
        try:
            outcome["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, name="bounded-call", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise AssertionError(f"still waiting after {seconds} s")
    return outcome.get("result"), outcome.get("error"), outcome["seconds"]

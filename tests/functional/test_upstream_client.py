"""The upstream client against real loopback servers that misbehave on purpose."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from chalicelib.proxy.errors import UpstreamTimeout, UpstreamUnavailable
from chalicelib.proxy.origin import parse_upstream
from chalicelib.proxy.upstream import UpstreamClient

Script = Callable[[socket.socket, int], None]


@pytest.fixture
def raw_server() -> Iterator[Callable[[Script], str]]:
    """A loopback server; each connection is handed to a script with its request number."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stopping = threading.Event()
    threads: list[threading.Thread] = []

    def start(script: Script) -> str:
        def serve() -> None:
            number = 0
            while not stopping.is_set():
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                number += 1
                worker = threading.Thread(target=script, args=(connection, number), daemon=True)
                worker.start()
                threads.append(worker)

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    stopping.set()
    listener.close()
    for worker in threads:
        worker.join(timeout=5)


def _read_request(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _client(read_timeout: float = 5.0) -> UpstreamClient:
    return UpstreamClient(
        connect_timeout=1.0, read_timeout=read_timeout, max_response_bytes=1 << 20
    )


def test_an_interim_response_is_refused_and_its_answer_never_reaches_another_caller(
    raw_server: Callable[[Script], str],
) -> None:
    def early_hints_then_late_answer(connection: socket.socket, number: int) -> None:
        with connection:
            while request := _read_request(connection):
                caller = b"alice" if b"/alice" in request else b"bob"
                if caller == b"alice":
                    connection.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
                    time.sleep(0.2)
                body = b"private data of " + caller
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )

    base = raw_server(early_hints_then_late_answer)
    client = _client()

    with pytest.raises(UpstreamUnavailable, match="interim 103"):
        client.send("GET", parse_upstream(base).origin, "/alice", [], b"")
    time.sleep(0.3)  # alice's real answer has arrived on her (now closed) connection
    bob = client.send("GET", parse_upstream(base).origin, "/bob", [], b"")

    assert bob.body == b"private data of bob"
    client.close()


def test_an_upstream_dripping_bytes_is_cut_off_at_the_deadline(
    raw_server: Callable[[Script], str],
) -> None:
    def drip(connection: socket.socket, number: int) -> None:
        with connection:
            _read_request(connection)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            for _ in range(100):
                try:
                    connection.sendall(b"x")
                except OSError:
                    return
                time.sleep(0.3)  # each byte well within the read timeout

    base = raw_server(drip)
    client = _client(read_timeout=1.0)
    started = time.monotonic()

    with pytest.raises(UpstreamTimeout):
        client.send("GET", parse_upstream(base).origin, "/slow", [], b"")

    assert time.monotonic() - started < 2.5
    client.close()


def test_a_connection_the_upstream_closed_while_idle_is_not_reused(
    raw_server: Callable[[Script], str],
) -> None:
    def answer_once_then_close(connection: socket.socket, number: int) -> None:
        with connection:
            _read_request(connection)
            body = b"answer %d" % number
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            time.sleep(0.05)  # keep-alive was implied, but the server closes anyway

    base = raw_server(answer_once_then_close)
    client = _client()

    first = client.send("GET", parse_upstream(base).origin, "/a", [], b"")
    time.sleep(0.2)
    second = client.send("GET", parse_upstream(base).origin, "/b", [], b"")

    assert (first.body, second.body) == (b"answer 1", b"answer 2")
    client.close()


def test_sequential_requests_reuse_one_keep_alive_connection(
    raw_server: Callable[[Script], str],
) -> None:
    connections: list[int] = []

    def keep_alive(connection: socket.socket, number: int) -> None:
        connections.append(number)
        with connection:
            while _read_request(connection):
                body = b"hello"
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + body)

    base = raw_server(keep_alive)
    client = _client()

    bodies = [
        client.send("GET", parse_upstream(base).origin, f"/{n}", [], b"").body for n in range(3)
    ]

    assert bodies == [b"hello"] * 3
    assert connections == [1]
    client.close()

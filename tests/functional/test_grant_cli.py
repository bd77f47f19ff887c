"""The grant CLI's HTTP client never hands the caller's token to anyone but the grant API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gatehouse.grant_commands import GrantApiClient, GrantCommandError

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJlcmluIn0.c2lnbmF0dXJl"


class Recorder(BaseHTTPRequestHandler):
    """Answers every request with ``answer``; remembers the Authorization headers it saw."""

    answer: tuple[int, dict[str, str]] = (200, {})
    seen: list[str | None]

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        status, headers = self.answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        body = b"[]"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(answer: tuple[int, dict[str, str]]) -> tuple[ThreadingHTTPServer, list[str | None]]:
    seen: list[str | None] = []
    handler = type("Handler", (Recorder,), {"answer": answer, "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


@pytest.fixture
def elsewhere() -> Iterator[tuple[str, list[str | None]]]:
    server, seen = serve((200, {}))
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_a_redirect_is_refused_and_the_token_stays_home(
    elsewhere: tuple[str, list[str | None]],
) -> None:
    target, seen_elsewhere = elsewhere
    gateway, seen_at_gateway = serve((302, {"Location": f"{target}/steal"}))
    try:
        client = GrantApiClient(f"http://127.0.0.1:{gateway.server_address[1]}", TOKEN)

        with pytest.raises(GrantCommandError, match=r"refused \(302\)"):
            client.call("GET", "")
    finally:
        gateway.shutdown()
        gateway.server_close()

    assert seen_at_gateway == [f"Bearer {TOKEN}"]
    assert seen_elsewhere == []


@pytest.mark.parametrize(
    "url",
    ["http://gatehouse.example.com", "http://10.0.0.5:8080", "ftp://127.0.0.1"],
)
def test_the_token_never_crosses_the_network_in_the_clear(url: str) -> None:
    with pytest.raises(GrantCommandError, match="must be https"):
        GrantApiClient(url, TOKEN)


@pytest.mark.parametrize(
    "url", ["https://gatehouse.example.com", "http://127.0.0.1:8080", "http://localhost:1"]
)
def test_https_and_the_local_stack_are_fine(url: str) -> None:
    GrantApiClient(url, TOKEN)

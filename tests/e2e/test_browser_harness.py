"""The browser harness itself: Chromium keeps a ``__Host-`` session cookie from plain-HTTP loopback.

No stack here: a tiny loopback server sets a cookie shaped like the gateway's and
echoes the Cookie header it receives, so a browser test that fails later is not
failing because of the browser, its flags or the cookie's prefix.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.e2e.browser import Screenshots

pytestmark = pytest.mark.e2e

SESSION_COOKIE = "__Host-gatehouse-session"
SET_COOKIE = f"{SESSION_COOKIE}=opaque-value; Secure; HttpOnly; Path=/; SameSite=Lax"


@dataclass
class CookieServer:
    """A loopback HTTP server that sets the session cookie and echoes the Cookie header."""

    server: ThreadingHTTPServer
    received: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Cookie)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/"


def _handler(received: list[tuple[str, str | None]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            cookie = self.headers.get("Cookie")
            received.append((self.path, cookie))
            echoed = html.escape(str(cookie))
            encoded = f"<!doctype html><title>echo</title><pre id=cookie>{echoed}</pre>".encode()
            self.send_response(200)
            self.send_header("Set-Cookie", SET_COOKIE)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: pytest shows the assertions, not an access log."""

    return Handler


@pytest.fixture
def cookie_server() -> Iterator[CookieServer]:
    received: list[tuple[str, str | None]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(received))
    thread = threading.Thread(target=server.serve_forever, name="cookie-server", daemon=True)
    thread.start()
    try:
        yield CookieServer(server, received)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_secure_host_cookie_from_plain_http_loopback_comes_back(
    browser_page: Page, screenshots: Screenshots, cookie_server: CookieServer
) -> None:
    browser_page.goto(cookie_server.url)
    assert browser_page.inner_text("#cookie") == "None"

    browser_page.reload()
    assert browser_page.inner_text("#cookie") == f"{SESSION_COOKIE}=opaque-value"
    pages = [cookie for path, cookie in cookie_server.received if path == "/"]  # not /favicon.ico
    assert pages == [None, f"{SESSION_COOKIE}=opaque-value"]

    [cookie] = browser_page.context.cookies()
    assert (cookie["name"], cookie["domain"], cookie["path"]) == (SESSION_COOKIE, "127.0.0.1", "/")
    assert (cookie["secure"], cookie["httpOnly"], cookie["sameSite"]) == (True, True, "Lax")
    assert browser_page.evaluate("document.cookie") == ""  # HttpOnly: invisible to scripts

    shot = screenshots.take(browser_page, "cookie-echoed")
    assert shot == screenshots.directory / "01-cookie-echoed.png"
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert shot.stat().st_size > 1000
    assert screenshots.taken == [shot]

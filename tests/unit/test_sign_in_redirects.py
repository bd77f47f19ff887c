"""Where sign-in may send a browser: this gateway's own paths, in any encoding; who is a browser."""

from __future__ import annotations

import pytest

from chalicelib.apigw.events import GatewayRequest, Headers
from chalicelib.authenticate.return_to import safe_return_to
from chalicelib.authorize.navigation import is_navigation, prefers_html

KEPT = [
    "/",
    "/v1.2/file.tar.gz",
    "/a/.well-known/x",
    "/app",
    "/app/reports?month=2026-11&sort=-total",
    "/docs/handbook/caf%C3%A9",
    "/a/b;v=1/c:d@e",
    "/%ff",  # not UTF-8: odd, but still a path of this origin
]
REFUSED = {
    "absolute": "https://evil.example/",
    "absolute, other case": "HTTPS://evil.example",
    "scheme without slashes": "https:evil.example",
    "javascript": "javascript:alert(1)",
    "scheme-relative": "//evil.example/path",
    "backslash host": "/\\evil.example",
    "backslash later": "/app\\..\\x",
    "encoded slash host": "/%2F%2Fevil.example",
    "encoded slash, lower case": "/%2f%2fevil.example",
    "encoded backslash": "/%5Cevil.example",
    "double-encoded slash": "/%252F%252Fevil.example",
    "triple-encoded slash": "/%25252F%25252Fevil.example",
    "userinfo": "//user@evil.example",
    "encoded userinfo": "/%2F%2Fuser@evil.example",
    "tab (browsers strip it)": "/\t/evil.example",
    "encoded tab": "/%09/evil.example",
    "newline header injection": "/a%0d%0aSet-Cookie:%20x=1",
    "raw newline": "/a\r\nLocation: https://evil.example",
    "NUL": "/a%00b",
    "space": "/a b",
    "non-ASCII": "/café",
    "bidi override (encoded)": "/%E2%80%AEmoc.live",
    "fragment": "/app#//evil.example",
    "relative": "app",
    "dot-relative": "./app",
    "empty": "",
    "sign-in loop": "/.gatehouse/login?rd=/app",
    "sign-out": "/.gatehouse/logout",
    "sign-in page, encoded": "/%2Egatehouse/logout",
    "too long": "/" + "a" * 3000,
    "dot segment to another host": "/.//evil.example",
    "encoded dot segments": "/%2e%2e//evil.example",
    "dot-dot into sign-out": "/x/../.gatehouse/logout",
    "dot segment before a query": "/a/..?x=1",
    "four times encoded": "/%2525252F/evil.example",
}


@pytest.mark.parametrize("path", KEPT)
def test_a_path_of_this_gateway_is_kept(path: str) -> None:
    assert safe_return_to(path) == path


@pytest.mark.parametrize("value", REFUSED.values(), ids=REFUSED.keys())
def test_anything_else_returns_to_the_root(value: str) -> None:
    assert safe_return_to(value) == "/"


def test_no_value_returns_to_the_root() -> None:
    assert safe_return_to(None) == "/"


def _request(method: str, **headers: str) -> GatewayRequest:
    return GatewayRequest(
        request_id="r-1",
        extended_request_id=None,
        stage="test",
        method=method,
        path="/app",
        resource="/{proxy+}",
        source_ip="198.51.100.7",
        host="gatehouse.example",
        headers=Headers({name.replace("_", "-"): [value] for name, value in headers.items()}),
        query=(),
    )


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("method", "headers", "navigating"),
    [
        ("GET", {"accept": BROWSER_ACCEPT}, True),
        ("HEAD", {"accept": BROWSER_ACCEPT}, True),
        ("GET", {"sec_fetch_mode": "navigate", "accept": "*/*"}, True),
        # fetch() from a page: the browser says so, whatever it accepts.
        ("GET", {"sec_fetch_mode": "cors", "accept": BROWSER_ACCEPT}, False),
        ("POST", {"accept": BROWSER_ACCEPT}, False),
        ("GET", {"accept": "application/json"}, False),
        ("GET", {"accept": "*/*"}, False),
        ("GET", {}, False),
        ("GET", {"accept": "application/json, text/html;q=0.5"}, False),
        ("GET", {"accept": "text/html;q=0"}, False),
    ],
)
def test_only_a_page_load_is_a_navigation(
    method: str, headers: dict[str, str], navigating: bool
) -> None:
    assert is_navigation(_request(method, **headers)) is navigating


def test_a_malformed_quality_counts_as_zero() -> None:
    assert prefers_html(["text/html;q=high"]) is False
    assert prefers_html(["text/html;q=high, application/xhtml+xml"]) is True

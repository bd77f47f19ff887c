"""Header hygiene towards the upstream and back towards the client."""

from __future__ import annotations

import pytest

from chalicelib.proxy.headers import (
    ForwardedFor,
    client_response_headers,
    upstream_request_headers,
)

FORWARDED = ForwardedFor(
    client_ip="203.0.113.7",
    proto="https",
    host="gatehouse.example.com",
    request_id="req-123",
)
ASSERTION = "eyJhbGciOiJFUzI1NiJ9.e30.sig"
GATEWAY_SET = {
    "x-forwarded-for": "203.0.113.7",
    "x-forwarded-proto": "https",
    "x-forwarded-host": "gatehouse.example.com",
    "x-request-id": "req-123",
    "x-gatehouse-assertion": ASSERTION,
}


def upstream(
    client: list[tuple[str, str]], *, pass_authorization: bool = False
) -> list[tuple[str, str]]:
    return upstream_request_headers(
        client, FORWARDED, pass_authorization=pass_authorization, assertion=ASSERTION
    ).headers


def client_supplied(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers that did not come from the gateway itself."""
    return [(n, v) for n, v in headers if (n.lower(), v) not in GATEWAY_SET.items()]


def names(headers: list[tuple[str, str]]) -> list[str]:
    return [name.lower() for name, _ in headers]


# --- towards the upstream ----------------------------------------------------------------

HOP_BY_HOP = [
    "Connection",
    "Keep-Alive",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Connection",
    "TE",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
    "transfer-encoding",
]


@pytest.mark.parametrize("name", HOP_BY_HOP)
def test_hop_by_hop_header_is_not_forwarded(name: str) -> None:
    headers = upstream([(name, "x"), ("Accept", "text/html")])

    assert client_supplied(headers) == [("Accept", "text/html")]


@pytest.mark.parametrize(
    ("connection", "dropped"),
    [
        ("X-Secret", ["X-Secret"]),
        ("x-secret", ["X-Secret"]),
        ("keep-alive, X-Secret ,X-Other", ["X-Secret", "X-Other"]),
        ("X-SECRET", ["x-secret"]),
    ],
    ids=["exact", "lower-case token", "token list with spaces", "upper-case token"],
)
def test_headers_named_in_connection_are_not_forwarded(connection: str, dropped: list[str]) -> None:
    client = [("Connection", connection), ("Accept", "*/*")] + [(n, "v") for n in dropped]

    headers = upstream(client)

    assert client_supplied(headers) == [("Accept", "*/*")]


def test_connection_tokens_from_every_connection_header_count() -> None:
    client = [("Connection", "X-A"), ("connection", "X-B"), ("X-A", "1"), ("X-B", "2")]

    assert client_supplied(upstream(client)) == []


GATEHOUSE_SPOOFS = [
    "X-Gatehouse-Assertion",
    "x-gatehouse-assertion",
    "X-GATEHOUSE-USER",
    "X-Gatehouse-Decision-Id",
    "X-Gatehouse-",
]


@pytest.mark.parametrize("name", GATEHOUSE_SPOOFS)
def test_client_gatehouse_header_is_dropped_and_reported(name: str) -> None:
    result = upstream_request_headers(
        [(name, "forged"), ("Accept", "*/*")],
        FORWARDED,
        pass_authorization=True,
        assertion=ASSERTION,
    )

    assert "forged" not in [value for _, value in result.headers]
    assert result.spoofed == (name.lower(),)


def test_every_spoofed_header_is_reported_once_sorted() -> None:
    client = [
        ("X-Gatehouse-User", "a"),
        ("X-Gatehouse-Assertion", "b"),
        ("x-gatehouse-user", "c"),
        ("X-Custom", "d"),
    ]

    result = upstream_request_headers(
        client, FORWARDED, pass_authorization=False, assertion=ASSERTION
    )

    assert result.spoofed == ("x-gatehouse-assertion", "x-gatehouse-user")
    assert client_supplied(result.headers) == [("X-Custom", "d")]


def test_no_spoofing_reported_for_clean_request() -> None:
    result = upstream_request_headers(
        [("Accept", "*/*")], FORWARDED, pass_authorization=False, assertion=ASSERTION
    )

    assert result.spoofed == ()


CREDENTIALS = [
    ("Authorization", "Bearer abc"),
    ("authorization", "Bearer abc"),
    ("Cookie", "session=s3cr3t"),
    ("COOKIE", "session=s3cr3t"),
]


@pytest.mark.parametrize(("name", "value"), CREDENTIALS, ids=[n for n, _ in CREDENTIALS])
def test_credentials_are_dropped_by_default(name: str, value: str) -> None:
    headers = upstream([(name, value), ("Accept", "*/*")])

    assert client_supplied(headers) == [("Accept", "*/*")]


@pytest.mark.parametrize(("name", "value"), CREDENTIALS, ids=[n for n, _ in CREDENTIALS])
def test_credentials_are_forwarded_when_route_passes_authorization(name: str, value: str) -> None:
    headers = upstream([(name, value), ("Accept", "*/*")], pass_authorization=True)

    assert client_supplied(headers) == [(name, value), ("Accept", "*/*")]


CLIENT_FORWARDING = [
    "X-Forwarded-For",
    "x-forwarded-for",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "X-Forwarded-Server",
    "X-Forwarded-User",
    "Forwarded",
    "X-Real-IP",
    "X-Request-Id",
    "Host",
    "Content-Length",
]


@pytest.mark.parametrize("name", CLIENT_FORWARDING)
def test_client_forwarding_header_is_replaced_by_the_gateways(name: str) -> None:
    headers = upstream([(name, "spoofed"), ("Accept", "*/*")], pass_authorization=True)

    assert "spoofed" not in [value for _, value in headers]
    assert client_supplied(headers) == [("Accept", "*/*")]


def test_gateway_headers_are_set_exactly_once() -> None:
    client = [
        ("X-Forwarded-For", "10.0.0.1"),
        ("X-Forwarded-For", "10.0.0.2"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Request-Id", "mine"),
        ("X-Gatehouse-Assertion", "forged"),
    ]

    headers = upstream(client)

    assert sorted((name.lower(), value) for name, value in headers) == sorted(GATEWAY_SET.items())


def test_repeated_headers_are_preserved_in_order() -> None:
    client = [
        ("X-Custom", "one"),
        ("Accept", "*/*"),
        ("X-Custom", "two"),
        ("x-custom", "three"),
    ]

    headers = upstream(client)

    assert client_supplied(headers) == client


def test_header_name_spelling_is_preserved() -> None:
    headers = upstream([("x-CUSTOM-thing", "v")])

    assert ("x-CUSTOM-thing", "v") in headers


# --- towards the client ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [*HOP_BY_HOP, "Content-Length", "content-length"],
)
def test_response_hop_by_hop_and_content_length_dropped(name: str) -> None:
    result = client_response_headers([(name, "x"), ("Content-Type", "text/plain")])

    assert result == {"Content-Type": ["text/plain"]}


def test_response_headers_named_in_connection_dropped() -> None:
    result = client_response_headers(
        [("Connection", "X-Internal"), ("X-Internal", "debug"), ("ETag", '"1"')]
    )

    assert result == {"ETag": ['"1"']}


def test_response_keeps_every_set_cookie_in_order() -> None:
    result = client_response_headers(
        [
            ("Set-Cookie", "a=1; Path=/"),
            ("Content-Length", "12"),
            ("Set-Cookie", "b=2; HttpOnly"),
            ("Content-Type", "application/json"),
        ]
    )

    assert result == {
        "Set-Cookie": ["a=1; Path=/", "b=2; HttpOnly"],
        "Content-Type": ["application/json"],
    }


def test_empty_response_headers() -> None:
    assert client_response_headers([]) == {}


def test_a_backend_cannot_set_a_gatehouse_cookie() -> None:
    headers = client_response_headers(
        [
            ("Set-Cookie", "__Host-gatehouse-session=planted; Path=/; Secure"),
            ("set-cookie", " __host-GATEHOUSE-login=x; Path=/"),
            ("Set-Cookie", "=__Host-gatehouse-session=nameless; Path=/; Secure"),
            ("Set-Cookie", "app=1; Path=/"),
        ]
    )
    assert headers["Set-Cookie"] == ["app=1; Path=/"]


@pytest.mark.parametrize("pass_authorization", [True, False])
def test_gatehouse_cookies_never_go_upstream(pass_authorization: bool) -> None:
    sent = upstream_request_headers(
        [
            ("Cookie", "app=1; __Host-gatehouse-session=s3cr3t; theme=dark"),
            ("Cookie", "__Host-gatehouse-login=attempt"),
        ],
        ForwardedFor("198.51.100.7", "https", "gatehouse.example", "r-1"),
        pass_authorization=pass_authorization,
        assertion="jwt",
    ).headers
    cookies = [value for name, value in sent if name.lower() == "cookie"]
    assert cookies == (["app=1; theme=dark"] if pass_authorization else [])
    assert not any("gatehouse-" in value for _, value in sent if "ookie" in value)

"""What crosses the proxy unchanged: bodies, encodings, paths, query strings, headers, statuses."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from typing import TYPE_CHECKING

import pytest

from tests.e2e.support import GatewayClient, alice, assert_gateway_error, backend_echo

if TYPE_CHECKING:
    from gatehouse.state import DevState

pytestmark = pytest.mark.e2e

# Every byte value once, shuffled: NUL, 0xFF and invalid UTF-8 sequences included.
BINARY = bytes(random.Random(20261128).sample(range(256), 256))


@pytest.mark.parametrize("content_type", ["application/octet-stream", "image/png"])
@pytest.mark.parametrize("accept", [None, "application/json", "*/*"])
def test_binary_response_is_byte_identical(
    gateway: GatewayClient, stack: DevState, content_type: str, accept: str | None
) -> None:
    headers = [("Content-Type", content_type)]
    if accept is not None:
        headers.append(("Accept", accept))
    exchange = gateway.send(
        "POST", "/api/upload?behave=binary", token=alice(stack), headers=headers, body=BINARY
    )
    assert exchange.status == 200, str(exchange)
    assert exchange.body == BINARY
    assert exchange.header("Content-Type") == content_type


@pytest.mark.parametrize("content_type", ["application/octet-stream", "image/png"])
def test_binary_request_body_reaches_backend_intact(
    gateway: GatewayClient, stack: DevState, content_type: str
) -> None:
    exchange = gateway.send(
        "POST",
        "/api/upload",
        token=alice(stack),
        headers=[("Content-Type", content_type), ("Accept", "application/json")],
        body=BINARY,
    )
    echo = backend_echo(exchange)
    assert echo["method"] == "POST"
    assert echo["body_bytes"] == len(BINARY)
    assert echo["body_sha256"] == hashlib.sha256(BINARY).hexdigest()


def test_gzip_response_passes_through_encoded(gateway: GatewayClient, stack: DevState) -> None:
    exchange = gateway.send(
        "GET",
        "/api/compressed?behave=gzip",
        token=alice(stack),
        headers=[("Accept-Encoding", "gzip")],
    )
    assert exchange.status == 200, str(exchange)
    assert exchange.header("Content-Encoding") == "gzip"
    assert exchange.body[:2] == b"\x1f\x8b", "the raw body is not gzip"
    echo = json.loads(gzip.decompress(exchange.body))
    assert echo["method"] == "GET"
    assert echo["path"] == "/api/compressed"
    assert echo["assertion"]["valid"] is True


def test_greedy_path_spans_many_segments(gateway: GatewayClient, stack: DevState) -> None:
    exchange = gateway.send("GET", "/api/a/b/c/d.json", token=alice(stack))
    echo = backend_echo(exchange)
    assert echo["path"] == "/api/a/b/c/d.json"
    assert echo["method"] == "GET"


def test_root_is_routed_but_denied_by_policy(gateway: GatewayClient, stack: DevState) -> None:
    # "/" is its own resource: the authorizer runs and the policy has no rule for it
    # (the reason, no_matching_rule, is checked in the audit trail by test_trail).
    exchange = gateway.send("GET", "/", token=alice(stack))
    assert_gateway_error(exchange, 403, "Forbidden")


def test_repeated_query_parameters_arrive_in_order(gateway: GatewayClient, stack: DevState) -> None:
    exchange = gateway.send("GET", "/api/search?tag=red&tag=blue&empty=", token=alice(stack))
    echo = backend_echo(exchange)
    assert echo["query"] == [["tag", "red"], ["tag", "blue"], ["empty", ""]]


def test_repeated_request_headers_arrive_as_separate_values(
    gateway: GatewayClient, stack: DevState
) -> None:
    exchange = gateway.send(
        "GET",
        "/api/headers",
        token=alice(stack),
        headers=[("X-Custom", "first"), ("X-Custom", "second")],
    )
    echo = backend_echo(exchange)
    values = [
        value
        for name, values in echo["headers"].items()
        if name.lower() == "x-custom"
        for value in values
    ]
    assert values == ["first", "second"]


def test_two_set_cookie_headers_come_back_separately(
    gateway: GatewayClient, stack: DevState
) -> None:
    exchange = gateway.send("GET", "/api/login?behave=cookies", token=alice(stack))
    assert exchange.status == 200, str(exchange)
    assert exchange.header_values("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]


def test_upstream_redirect_is_returned_not_followed(
    gateway: GatewayClient, stack: DevState
) -> None:
    exchange = gateway.send("GET", "/api/moved?behave=redirect", token=alice(stack))
    assert exchange.status == 302, str(exchange)
    assert exchange.header("Location") == "/elsewhere"
    assert exchange.body == b""


def test_slow_upstream_gives_504_with_request_id(gateway: GatewayClient, stack: DevState) -> None:
    # The stack runs with GATEHOUSE_UPSTREAM_READ_TIMEOUT_SECONDS=2; the backend waits 3 s.
    exchange = gateway.send("GET", "/api/slow?behave=slow&seconds=3", token=alice(stack))
    assert exchange.status == 504, str(exchange)
    assert exchange.header("Content-Type") == "application/json"
    assert exchange.json() == {"message": "upstream timed out", "request_id": exchange.request_id}


def test_upstream_503_passes_through_untouched(gateway: GatewayClient, stack: DevState) -> None:
    exchange = gateway.send("GET", "/api/flaky?behave=status&code=503", token=alice(stack))
    assert exchange.status == 503, str(exchange)
    echo = exchange.json()
    # The backend's own JSON, not a gateway or proxy error body.
    assert "message" not in echo
    assert echo["path"] == "/api/flaky"
    assert echo["assertion"]["valid"] is True
    assert exchange.header("Retry-After") is None

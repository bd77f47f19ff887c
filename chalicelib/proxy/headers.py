"""Header hygiene between the client, the gateway and the upstream.

Towards the upstream:

- hop-by-hop headers (RFC 9110 section 7.6.1) and every header named in
  ``Connection`` are dropped;
- every client-supplied ``X-Gatehouse-*`` header is dropped (only the gateway
  speaks in that namespace), and so are client-supplied forwarding headers
  (``Forwarded``, ``X-Forwarded-*``, ``X-Real-IP``, ``X-Request-Id``), which
  the gateway then sets from what API Gateway observed;
- ``Authorization`` and ``Cookie`` are forwarded only when the route says
  ``pass_authorization: true``;
- ``Host`` and ``Content-Length`` are left to the HTTP client.

Towards the client, hop-by-hop headers and ``Content-Length`` (API Gateway
sets its own) are dropped from the upstream's response.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ASSERTION_HEADER = "X-Gatehouse-Assertion"
GATEHOUSE_PREFIX = "x-gatehouse-"

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_FORWARDING_PREFIX = "x-forwarded-"
_SET_BY_GATEWAY = frozenset(
    {
        "forwarded",
        "x-real-ip",
        "x-request-id",
        "host",
        "content-length",
    }
)
_CREDENTIALS = frozenset({"authorization", "cookie"})
_NOT_TO_CLIENT = HOP_BY_HOP | {"content-length"}


@dataclass(frozen=True, slots=True)
class ForwardedFor:
    """What the gateway itself observed about the request."""

    client_ip: str
    proto: str
    host: str
    request_id: str


@dataclass(frozen=True, slots=True)
class UpstreamHeaders:
    """Headers to send upstream, and the client-supplied ones that were spoofing ours."""

    headers: list[tuple[str, str]]
    spoofed: tuple[str, ...]


def _connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    tokens: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            tokens.update(token.strip().lower() for token in value.split(",") if token.strip())
    return tokens


def upstream_request_headers(
    client_headers: Iterable[tuple[str, str]],
    forwarded: ForwardedFor,
    *,
    pass_authorization: bool,
    assertion: str,
) -> UpstreamHeaders:
    """The headers for the upstream request."""
    pairs = list(client_headers)
    dropped = HOP_BY_HOP | _connection_tokens(pairs) | _SET_BY_GATEWAY
    if not pass_authorization:
        dropped = dropped | _CREDENTIALS
    kept: list[tuple[str, str]] = []
    spoofed: list[str] = []
    for name, value in pairs:
        lowered = name.lower()
        if lowered.startswith(GATEHOUSE_PREFIX):
            spoofed.append(lowered)
        elif lowered not in dropped and not lowered.startswith(_FORWARDING_PREFIX):
            kept.append((name, value))
    kept.extend(
        [
            ("X-Forwarded-For", forwarded.client_ip),
            ("X-Forwarded-Proto", forwarded.proto),
            ("X-Forwarded-Host", forwarded.host),
            ("X-Request-Id", forwarded.request_id),
            (ASSERTION_HEADER, assertion),
        ]
    )
    return UpstreamHeaders(kept, tuple(sorted(set(spoofed))))


def client_response_headers(upstream_headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """The upstream's response headers as API Gateway ``multiValueHeaders``."""
    pairs = list(upstream_headers)
    dropped = _NOT_TO_CLIENT | _connection_tokens(pairs)
    headers: dict[str, list[str]] = {}
    for name, value in pairs:
        if name.lower() not in dropped:
            headers.setdefault(name, []).append(value)
    return headers

"""Header hygiene between the client, the gateway and the upstream.

Towards the upstream:

- hop-by-hop headers (RFC 9110 section 7.6.1) and every header named in
  ``Connection`` are dropped;
- every client-supplied ``X-Gatehouse-*`` header is dropped (only the gateway
  speaks in that namespace), and so are client-supplied forwarding headers
  (``Forwarded``, ``X-Forwarded-*``, ``X-Real-IP``, ``X-Request-Id`` and the
  other client-IP headers), which the gateway then sets from what API Gateway
  observed;
- headers that make common frameworks run another method or route another
  path (``X-HTTP-Method-Override``, ``X-Original-URL``, ...) are dropped: the
  policy decided on the method and path it saw;
- a header whose name is not an RFC 9110 token, or contains ``_`` (which some
  servers read as ``-``), is dropped, so no spelling slips past these rules;
- ``Authorization`` and ``Cookie`` are forwarded only when the route says
  ``pass_authorization: true``, and even then without Gatehouse's own
  cookies (``__Host-gatehouse-*``: a session is the gateway's credential);
- ``Host`` and ``Content-Length`` are left to the HTTP client.

Towards the client, hop-by-hop headers, ``Content-Length`` (API Gateway sets
its own), ``X-Request-Id`` (the gateway's wins) and any ``Set-Cookie`` of a
Gatehouse cookie (a backend must not plant a session) are dropped from the
upstream's response, and folded values are unfolded onto one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from chalicelib.sessions.cookies import LOGIN_COOKIE, SESSION_COOKIE, without_cookies

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
# RFC 9110 token characters, without "_": servers that map "_" to "-" (CGI,
# some WSGI servers) would otherwise hear X_Gatehouse_Assertion as ours.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^`|~0-9A-Za-z]+")
_FOLD = re.compile(r"[\r\n]+[ \t]*")
_REWRITES_REQUEST = frozenset(
    {
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-url",
        "x-rewrite-url",
        "x-original-method",
    }
)
_CLIENT_IP = frozenset(
    {
        "true-client-ip",
        "x-client-ip",
        "client-ip",
        "cf-connecting-ip",
        "fastly-client-ip",
        "x-cluster-client-ip",
        "x-originating-ip",
        "x-remote-ip",
        "x-remote-addr",
        "x-host",
    }
)
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
GATEHOUSE_COOKIES = frozenset({SESSION_COOKIE, LOGIN_COOKIE})
GATEHOUSE_COOKIE_PREFIX = "__host-gatehouse-"
_NOT_TO_CLIENT = HOP_BY_HOP | {"content-length", "x-request-id"}


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


def is_gatehouse_header(name: str) -> bool:
    """Whether ``name`` claims the gateway's namespace (in any case, with ``_`` or ``-``)."""
    return name.lower().replace("_", "-").startswith(GATEHOUSE_PREFIX)


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
    dropped = (
        HOP_BY_HOP | _connection_tokens(pairs) | _SET_BY_GATEWAY | _REWRITES_REQUEST | _CLIENT_IP
    )
    if not pass_authorization:
        dropped = dropped | _CREDENTIALS
    kept: list[tuple[str, str]] = []
    spoofed: list[str] = []
    for name, value in pairs:
        lowered = name.lower()
        if is_gatehouse_header(name):
            spoofed.append(lowered)
        elif (
            lowered not in dropped
            and not lowered.startswith(_FORWARDING_PREFIX)
            and _HEADER_NAME.fullmatch(name)
        ):
            if lowered == "cookie":
                # Gatehouse's own cookies (the session, a sign-in attempt) are
                # its credentials, never the backend's, whatever the route says.
                kept.extend((name, rest) for rest in without_cookies([value], GATEHOUSE_COOKIES))
                continue
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
        if name.lower() not in dropped and _HEADER_NAME.fullmatch(name):
            if name.lower() == "set-cookie" and _sets_gatehouse_cookie(value):
                # A backend must not plant or overwrite a session (fixation).
                continue
            headers.setdefault(name, []).append(_FOLD.sub(" ", value))
    return headers


def _sets_gatehouse_cookie(set_cookie: str) -> bool:
    name, _, value = set_cookie.partition("=")
    name = name.strip().lower()
    if not name:
        # A nameless cookie ("=__Host-gatehouse-session=x"): older browsers
        # read its value as name=value.
        name = value.split(";", 1)[0].split("=", 1)[0].strip().lower()
    return name.startswith(GATEHOUSE_COOKIE_PREFIX)

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
- ``Host`` and ``Content-Length`` are left to the HTTP client;
- on a route with ``identity_headers: true`` the gateway adds
  ``X-Gatehouse-User``, ``X-Gatehouse-Email`` and ``X-Gatehouse-Groups``,
  derived from the verified principal the decision used (client copies of
  them are dropped with every other ``X-Gatehouse-*`` header, on every route).
  Values are percent-encoded outside printable ASCII (and ``%``, and ``,``
  within a group name), which is injective: no value can end a header line
  or pass for another. A header whose value would exceed its bound, or that
  has nothing to say, is left out rather than cut (a cut value could name
  someone else).

Towards the client, hop-by-hop headers, ``Content-Length`` (API Gateway sets
its own), ``X-Request-Id`` (the gateway's wins) and any ``Set-Cookie`` of a
Gatehouse cookie (a backend must not plant a session) are dropped from the
upstream's response, and folded values are unfolded onto one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from chalicelib.policy.subjects import QUALIFIER, normal_issuer
from chalicelib.sessions.cookies import LOGIN_COOKIE, SESSION_COOKIE, without_cookies

if TYPE_CHECKING:
    from chalicelib.identity import Identity

ASSERTION_HEADER = "X-Gatehouse-Assertion"
USER_HEADER = "X-Gatehouse-User"
EMAIL_HEADER = "X-Gatehouse-Email"
GROUPS_HEADER = "X-Gatehouse-Groups"
# Bounds on the identity headers' values (after encoding); beyond them the header
# is left out. Servers commonly refuse requests with header lines over 8 KB.
MAX_USER_HEADER = 512
MAX_EMAIL_HEADER = 512
MAX_GROUPS_HEADER = 4096
# Printable ASCII but "%": kept as is; everything else is percent-encoded (UTF-8).
_VISIBLE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
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


def header_value(text: str, *, separator: str = "") -> str:
    """``text`` percent-encoded outside printable ASCII, ``%`` and ``separator`` included.

    Injective: two texts never give one value, and none has CR, LF, NUL or a space.
    """
    return quote(text, safe=_VISIBLE.replace(separator, "") if separator else _VISIBLE)


def principal_name(identity: Identity, default_issuer: str) -> str:
    """The principal as one string: ``sub`` for the default issuer, else ``<issuer>|<sub>``.

    The policy's own qualification (``chalicelib.policy.subjects``). A default
    issuer's ``sub`` that would read as qualified (a URL, then ``|``) is
    qualified too, so that it cannot pass for another issuer's principal.
    """
    issuer = normal_issuer(identity.issuer)
    subject = identity.subject
    head, bar, _ = subject.partition(QUALIFIER)
    looks_qualified = bool(bar) and "://" in head
    if issuer == normal_issuer(default_issuer) and not looks_qualified:
        return subject
    return f"{issuer}{QUALIFIER}{subject}"


def identity_headers(identity: Identity, default_issuer: str) -> list[tuple[str, str]]:
    """``X-Gatehouse-User``, ``-Email`` and ``-Groups`` for the verified ``identity``."""
    headers: list[tuple[str, str]] = []
    user = header_value(principal_name(identity, default_issuer))
    if len(user) <= MAX_USER_HEADER:
        headers.append((USER_HEADER, user))
    if identity.email:
        email = header_value(identity.email)
        if len(email) <= MAX_EMAIL_HEADER:
            headers.append((EMAIL_HEADER, email))
    if identity.groups:
        groups = ",".join(header_value(g, separator=",") for g in sorted(identity.groups))
        if len(groups) <= MAX_GROUPS_HEADER:
            headers.append((GROUPS_HEADER, groups))
    return headers


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
    identity: Iterable[tuple[str, str]] = (),
) -> UpstreamHeaders:
    """The headers for the upstream request.

    ``identity``: the gateway's identity headers (:func:`identity_headers`),
    sent after every client ``X-Gatehouse-*`` header was dropped.
    """
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
            *identity,
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

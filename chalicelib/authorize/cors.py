"""CORS at the edge: preflights decided by Gatehouse, allowed origins named on answers.

A route's ``cors`` block (:class:`~chalicelib.policy.CorsPolicy`) says which
browser origins may call it. A *preflight* (``OPTIONS`` with ``Origin`` and
``Access-Control-Request-Method``, which browsers send without credentials)
to such a route is decided here, by the policy alone, and answered by
Gatehouse: it is never forwarded upstream. Its decision carries one of the
``cors_*`` reason codes and is audited like any other decision.

A preflight carries no credentials (an ``OPTIONS`` with ``Authorization`` or
``Cookie`` is an ordinary request). Matching is exact: the ``Origin`` header
must equal a listed origin (or the list is ``"*"``; ``null`` never matches);
the requested method must be listed as written (Fetch upper-cases only the
six standard methods, so ``patch`` is not ``PATCH``); every requested header
must be listed (any case). A request with two ``Origin`` or two
``Access-Control-Request-Method`` headers is a preflight no origin is allowed
for.

Pure functions, no I/O: the authorizer, the proxy (on a cached answer) and
the proxy's answer all read the same policy through them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from chalicelib.apigw.events import GatewayRequest
    from chalicelib.policy import CorsPolicy

# The authorizer context key that marks a preflight decided by a route's ``cors``
# block (its value: the reason code); the proxy answers such a request itself.
CORS_CONTEXT_KEY = "cors_preflight"
ORIGIN = "origin"
REQUEST_METHOD = "access-control-request-method"
REQUEST_HEADERS = "access-control-request-headers"
ALLOW_ORIGIN = "Access-Control-Allow-Origin"
ALLOW_CREDENTIALS = "Access-Control-Allow-Credentials"
ALLOW_METHODS = "Access-Control-Allow-Methods"
ALLOW_HEADERS = "Access-Control-Allow-Headers"
MAX_AGE = "Access-Control-Max-Age"
# The CORS headers a route with ``cors`` answers with: the upstream's own are replaced.
GATEWAY_OWNED = frozenset(
    name.lower()
    for name in (ALLOW_ORIGIN, ALLOW_CREDENTIALS, ALLOW_METHODS, ALLOW_HEADERS, MAX_AGE)
)
_CREDENTIALS = frozenset({"authorization", "cookie"})
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True, slots=True)
class Preflight:
    """What a CORS preflight asks.

    Attributes
    ----------
    origin:
        The ``Origin`` header ("" when absent or sent more than once: no origin matches).
    method:
        ``Access-Control-Request-Method`` as sent ("" when sent more than once).
    headers:
        ``Access-Control-Request-Headers``, each name in lower case.
    """

    origin: str
    method: str
    headers: tuple[str, ...] = ()


def preflight_of(method: str, headers: Iterable[tuple[str, str]]) -> Preflight | None:
    """The preflight a request is, or None when it is not one.

    A preflight is an ``OPTIONS`` request carrying both ``Origin`` and
    ``Access-Control-Request-Method`` (the Fetch standard's definition) and
    no credentials: browsers never send ``Authorization`` or cookies with
    one. A request that does is decided by the rules like any other; this
    also keeps a credential-less answer out of an authorizer cache keyed on
    ``Authorization``.
    """
    if method != "OPTIONS":
        return None
    origins: list[str] = []
    methods: list[str] = []
    requested: list[str] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in _CREDENTIALS:
            return None
        if lowered == ORIGIN:
            origins.append(value.strip())
        elif lowered == REQUEST_METHOD:
            methods.append(value.strip())
        elif lowered == REQUEST_HEADERS:
            requested.extend(part.strip().lower() for part in value.split(",") if part.strip())
    if not origins or not methods:
        return None
    return Preflight(
        origin=origins[0] if len(origins) == 1 else "",
        method=methods[0] if len(methods) == 1 else "",
        headers=tuple(requested),
    )


def request_preflight(request: GatewayRequest) -> Preflight | None:
    """:func:`preflight_of` for an API Gateway request."""
    return preflight_of(request.method, request.headers)


def origin_allowed(cors: CorsPolicy, origin: str) -> bool:
    """Whether ``origin`` (an ``Origin`` header's value) may call the route."""
    if not origin or origin == "null":
        # "null" is what sandboxed frames and file: pages send: anyone can be it.
        return False
    return "*" in cors.origins or origin in cors.origins


def decide_preflight(cors: CorsPolicy, preflight: Preflight) -> Reason:
    """The preflight's decision: allowed, or the first thing that is not allowed."""
    if not origin_allowed(cors, preflight.origin):
        return Reason.CORS_ORIGIN_NOT_ALLOWED
    if preflight.method not in cors.methods:
        return Reason.CORS_METHOD_NOT_ALLOWED
    if any(name not in cors.headers for name in preflight.headers):
        return Reason.CORS_HEADERS_NOT_ALLOWED
    return Reason.CORS_PREFLIGHT_ALLOWED


def preflight_headers(cors: CorsPolicy, preflight: Preflight) -> dict[str, list[str]]:
    """The headers of an allowed preflight's 204 (the route's whole CORS policy, origin echoed)."""
    headers = {
        ALLOW_ORIGIN: [preflight.origin],
        ALLOW_METHODS: [", ".join(m for m in _METHOD_ORDER if m in cors.methods)],
        "Vary": ["Origin"],
    }
    if cors.headers:
        headers[ALLOW_HEADERS] = [", ".join(sorted(cors.headers))]
    if cors.max_age is not None:
        headers[MAX_AGE] = [str(cors.max_age)]
    if cors.credentials:
        headers[ALLOW_CREDENTIALS] = ["true"]
    return headers


def with_response_cors(
    cors: CorsPolicy | None, origins: list[str], headers: Mapping[str, list[str]]
) -> dict[str, list[str]]:
    """An answer's headers with the route's CORS headers in place of the upstream's.

    Parameters
    ----------
    cors:
        The route's CORS policy (None: the headers are returned unchanged).
    origins:
        The request's ``Origin`` header values (one is needed for a match).
    headers:
        The answer's headers (``multiValueHeaders``).
    """
    if cors is None:
        return dict(headers)
    kept = {name: list(values) for name, values in headers.items()}
    for name in [n for n in kept if n.lower() in GATEWAY_OWNED]:
        del kept[name]
    vary = next((n for n in kept if n.lower() == "vary"), "Vary")
    if not any(
        v.strip().lower() in ("origin", "*") for v in ",".join(kept.get(vary, [])).split(",")
    ):
        kept.setdefault(vary, []).append("Origin")
    if len(origins) == 1 and origin_allowed(cors, origins[0]):
        kept[ALLOW_ORIGIN] = [origins[0]]
        if cors.credentials:
            kept[ALLOW_CREDENTIALS] = ["true"]
    return kept

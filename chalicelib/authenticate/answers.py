"""The small answers of the sign-in routes: redirects, cookies on a page, JSON, and texts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chalicelib.apigw.responses import ProxyResponse
from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from chalicelib.apigw.events import GatewayRequest


def query_parameters(request: GatewayRequest) -> dict[str, str]:
    """The query's parameters; a repeated one counts as absent (no guessing which was meant)."""
    counts: dict[str, int] = {}
    for name, _ in request.query:
        counts[name] = counts.get(name, 0) + 1
    return {name: value for name, value in request.query if counts[name] == 1}


def redirect(location: str, *cookies: str) -> ProxyResponse:
    headers = {"Location": [location], "Cache-Control": ["no-store"]}
    if cookies:
        headers["Set-Cookie"] = list(cookies)
    return ProxyResponse(302, headers, b"")


def with_cookies(response: ProxyResponse, *cookies: str) -> ProxyResponse:
    headers = dict(response.headers)
    headers["Set-Cookie"] = [*headers.get("Set-Cookie", []), *cookies]
    return ProxyResponse(response.status, headers, response.body)


def json_answer(status: int, body: Mapping[str, Any]) -> ProxyResponse:
    return ProxyResponse(
        status,
        {"Content-Type": ["application/json"], "Cache-Control": ["no-store"]},
        json.dumps(body).encode("utf-8"),
    )


def origin_of(url: str) -> str:
    """``https://host:port`` of a URL."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def short(text: str, limit: int = 120) -> str:
    """A provider's words for the trail: printable ASCII, bounded."""
    cleaned = "".join(char if " " <= char <= "~" else "?" for char in text)
    return cleaned[:limit]


_MESSAGES = {
    Reason.LOGIN_EXPIRED: "This sign-in took too long or was started in another browser.",
    Reason.LOGIN_STATE_MISMATCH: "This sign-in answer does not belong to this browser.",
    Reason.LOGIN_NONCE_MISMATCH: "The identity provider's answer could not be verified.",
    Reason.LOGIN_IDP_ERROR: "The identity provider did not sign you in.",
    Reason.LOGIN_CODE_REJECTED: "The identity provider refused this sign-in.",
    Reason.LOGIN_SESSION_TOO_LARGE: "Your account has too many groups or claims for a session.",
    Reason.ISSUER_UNAVAILABLE: "The identity provider cannot be reached.",
}


def failure_message(reason: Reason) -> str:
    """What a person is told when sign-in failed for ``reason`` (never the detail)."""
    return _MESSAGES.get(reason, "The identity provider's answer could not be verified.")

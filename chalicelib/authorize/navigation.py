"""A browser navigating without usable credentials: let through, to be sent to sign in.

API Gateway answers a ``Unauthorized`` authorizer with its own 401, the same
for every client; it cannot redirect. So for a browser's page load (a
``GET`` or ``HEAD`` whose ``Accept`` prefers HTML) on a stage with browser
sign-in, the authorizer allows exactly this method and path, with a context
that carries no principal, only ``sign_in`` (the reason). The proxy answers
such a request with a redirect to sign in and never forwards it
(:mod:`chalicelib.proxy.handler`). Any other client still gets 401 from the
gateway with ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.authorize.iam import policy_document

if TYPE_CHECKING:
    from chalicelib.apigw.events import GatewayRequest
    from chalicelib.authorize.iam import MethodArn
    from chalicelib.reasons import Reason

SIGN_IN_CONTEXT_KEY = "sign_in"
ANONYMOUS_PRINCIPAL = "anonymous"


def is_navigation(request: GatewayRequest) -> bool:
    """Whether ``request`` is a browser loading a page (not a script, not an API client)."""
    if request.method not in ("GET", "HEAD"):
        return False
    mode = request.headers.get("sec-fetch-mode")
    if mode is not None:
        return mode.strip().lower() == "navigate"
    return prefers_html(request.headers.get_all("accept"))


def prefers_html(accept_values: list[str]) -> bool:
    """Whether ``Accept`` ranks ``text/html`` above JSON (and above zero)."""
    html = json = 0.0
    for value in accept_values:
        for item in value.split(","):
            media, _, parameters = item.strip().partition(";")
            quality = 1.0
            for parameter in parameters.split(";"):
                name, _, raw = parameter.strip().partition("=")
                if name.strip().lower() == "q":
                    try:
                        quality = float(raw)
                    except ValueError:
                        quality = 0.0
            media = media.strip().lower()
            if media in ("text/html", "application/xhtml+xml"):
                html = max(html, quality)
            elif media == "application/json":
                json = max(json, quality)
    return html > 0 and html >= json


def sign_in_answer(
    method_arn: MethodArn, reason: Reason, decision_id: str, request_id: str
) -> dict[str, Any]:
    """Allow this one method and path, with a context that makes the proxy redirect."""
    return {
        "principalId": ANONYMOUS_PRINCIPAL,
        "policyDocument": policy_document([str(method_arn)], []),
        "context": {
            SIGN_IN_CONTEXT_KEY: reason.value,
            "decision_id": decision_id,
            "decided_for": request_id,
        },
    }

"""What the proxy hands back to API Gateway: the upstream's answer or a short error."""

from __future__ import annotations

import json

from chalicelib.apigw.responses import ProxyResponse
from chalicelib.reasons import Reason

__all__ = ["UPSTREAM_MESSAGES", "ProxyResponse", "error_response", "refusal_answer"]


def error_response(
    status: int, message: str, request_id: str | None, **extra: str
) -> ProxyResponse:
    """A short JSON error carrying the request id."""
    body = json.dumps({"message": message, "request_id": request_id}).encode("utf-8")
    headers = {"Content-Type": ["application/json"]}
    headers.update({name: [value] for name, value in extra.items()})
    return ProxyResponse(status, headers, body)


UPSTREAM_MESSAGES = {504: "upstream timed out", 400: "bad request"}
_AMBIGUOUS_MESSAGES = {
    Reason.AMBIGUOUS_PATH: "ambiguous path",
    Reason.AMBIGUOUS_REQUEST: "ambiguous request: method override parameter",
}


def refusal_answer(reason: Reason) -> tuple[int, str]:
    """Status and message for a request refused for ``reason``."""
    if reason.is_ambiguous:
        return 400, _AMBIGUOUS_MESSAGES[reason]
    if reason.is_credential_failure:
        return 401, "token expired" if reason is Reason.TOKEN_EXPIRED else "unauthorized"
    if reason.is_decision_failure:
        return 503, "policy unavailable" if reason is Reason.POLICY_UNAVAILABLE else "unavailable"
    return 403, "forbidden"

"""``GET``/``HEAD /.gatehouse/health``: the gateway is up, said without asking anything.

Unauthenticated (no authorizer, like the sign-in routes) and free of side
effects: no AWS call, no container built, no settings read. It is the one
route a load balancer, an uptime check or a person may hit without a token.

It is not audited per hit, on purpose: it carries no identity, reaches no
backend and decides nothing, so an event would record nothing the trail is
for, while letting anyone on the internet write to the Object Lock ledger
at will (every event is kept for years). API Gateway throttles the method
(the stage's method settings, ``gatehouse/deploy``), and its access log
still has one line per hit.
"""

from __future__ import annotations

import json
from typing import Any

HEALTH_PATH = "/.gatehouse/health"
HEALTH_METHODS = ("GET", "HEAD")
_BODY = json.dumps({"status": "ok"}, separators=(",", ":"))


def health_answer(event: Any) -> dict[str, Any]:
    """The Lambda proxy response: 200 ``{"status":"ok"}``, never cached (no body for HEAD)."""
    method = event.get("httpMethod") if isinstance(event, dict) else None
    context = event.get("requestContext") if isinstance(event, dict) else None
    request_id = context.get("requestId") if isinstance(context, dict) else None
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    if isinstance(request_id, str):
        headers["X-Request-Id"] = request_id
    return {
        "statusCode": 200,
        "headers": headers,
        "body": "" if method == "HEAD" else _BODY,
        "isBase64Encoded": False,
    }

"""What IAP users expect at the edge, over real HTTP through the shared local stack.

The health route, a browser's CORS preflight to the demo policy's ``spa-api``
route (``cors`` for http://localhost:3000) answered by Gatehouse and audited
as a decision, and the identity headers that route sends its backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.support import (
    GatewayClient,
    alice,
    backend_echo,
    echoed_header,
    events_of,
    wait_for_audit,
)

if TYPE_CHECKING:
    from tests.e2e.support import AuditIndex, RunningStack

pytestmark = pytest.mark.e2e

SPA_ORIGIN = "http://localhost:3000"


def preflight(gateway: GatewayClient, origin: str, method: str) -> tuple[int, dict[str, str], str]:
    exchange = gateway.send(
        "OPTIONS",
        "/spa/items",
        headers=[
            ("Origin", origin),
            ("Access-Control-Request-Method", method),
            ("Access-Control-Request-Headers", "authorization,content-type"),
        ],
    )
    cors = {k.lower(): v for k, v in exchange.headers if k.lower().startswith("access-control-")}
    return exchange.status, cors, exchange.request_id


def test_health_cors_preflights_and_identity_headers_at_the_edge(
    gateway: GatewayClient, running_stack: RunningStack
) -> None:
    stack = running_stack.state
    for method in ("GET", "HEAD"):
        health = gateway.send(method, "/.gatehouse/health")
        assert health.status == 200, str(health)
        assert health.header("Cache-Control") == "no-store"
        assert health.body == (b"" if method == "HEAD" else b'{"status":"ok"}')
    health_id = gateway.exchanges[-2].request_id

    status, cors, allowed_id = preflight(gateway, SPA_ORIGIN, "POST")
    assert status == 204
    assert cors["access-control-allow-origin"] == SPA_ORIGIN
    assert cors["access-control-allow-methods"] == "GET, POST"
    assert cors["access-control-allow-credentials"] == "true"
    assert cors["access-control-max-age"] == "600"
    assert gateway.exchanges[-1].header("Vary") == "Origin"

    status, cors, refused_id = preflight(gateway, "https://evil.example", "POST")
    assert (status, cors) == (403, {})

    echo = backend_echo(
        gateway.send(
            "GET",
            "/spa/items",
            token=alice(stack),
            headers=[("Origin", SPA_ORIGIN), ("X-Gatehouse-User", "root")],
        )
    )
    assert echoed_header(echo, "X-Gatehouse-User") == ["alice"]
    assert echoed_header(echo, "X-Gatehouse-Email") == ["alice@example.com"]
    assert echoed_header(echo, "X-Gatehouse-Groups") == ["engineering"]
    assert gateway.exchanges[-1].header("Access-Control-Allow-Origin") == SPA_ORIGIN

    def complete(index: AuditIndex) -> bool:
        return bool(
            events_of(index, allowed_id, "decision") and events_of(index, refused_id, "decision")
        )

    snapshot = wait_for_audit(running_stack.state_dir, complete)
    [allowed] = events_of(snapshot.by_request, allowed_id, "decision")
    [refused] = events_of(snapshot.by_request, refused_id, "decision")
    assert allowed["decision"]["reasons"] == ["cors_preflight_allowed"]
    assert allowed["resource"]["route_id"] == "spa-api"
    assert refused["decision"]["reasons"] == ["cors_origin_not_allowed"]
    # Neither preflight reached the backend: no response event names an upstream answer.
    assert events_of(snapshot.by_request, allowed_id, "response") == []
    # Health is not audited by Gatehouse (only API Gateway's access log sees it).
    assert events_of(snapshot.by_request, health_id, "decision") == []
    assert events_of(snapshot.by_request, health_id, "response") == []

"""Requests the authorizer never decided still reach the trail, from API Gateway's access log.

The local gateway writes an access-log line per request in the stage's format
(infra/access_log_format.json) and delivers them to ``access_log_ingest`` as a
CloudWatch Logs subscription would; the lines become ``gateway`` events in
the ledger.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.support import GatewayClient, RunningStack, events_of, wait_for_audit

if TYPE_CHECKING:
    from gatehouse.state import DevState

pytestmark = pytest.mark.e2e


def test_refused_at_the_gateway_or_by_the_authorizer_every_request_is_a_gateway_event(
    running_stack: RunningStack, stack: DevState, gateway: GatewayClient
) -> None:
    no_token = gateway.send("GET", "/api/gateway-log/no-token")
    # The JWKS route takes GET only: API Gateway answers anything else itself.
    no_such_method = gateway.send("PUT", "/.well-known/gatehouse/jwks.json")
    assert (no_token.status, no_such_method.status) == (401, 404)

    snapshot = wait_for_audit(
        running_stack.state_dir,
        lambda index: all(
            events_of(index, exchange.request_id, "gateway")
            for exchange in (no_token, no_such_method)
        ),
    )

    [unauthorized] = events_of(snapshot.by_request, no_token.request_id, "gateway")
    assert unauthorized["outcome"]["status"] == 401
    assert unauthorized["gateway"]["response_type"] == "UNAUTHORIZED"
    assert unauthorized["gateway"]["authorizer_status"] == 401
    assert unauthorized["resource"]["path"] == "/api/gateway-log/no-token"
    # The authorizer decided this one too: its decision event is there beside it.
    assert events_of(snapshot.by_request, no_token.request_id, "decision")

    [unrouted] = events_of(snapshot.by_request, no_such_method.request_id, "gateway")
    assert unrouted["outcome"]["status"] == 404
    assert unrouted["gateway"]["response_type"] == "MISSING_AUTHENTICATION_TOKEN"
    assert unrouted["gateway"]["served_by"] == "gateway"
    # Nothing else saw it: without the access log it would not be in the trail at all.
    assert [e["event_type"] for e in snapshot.by_request[no_such_method.request_id]] == ["gateway"]


@pytest.mark.parametrize(
    "agent",
    [
        pytest.param('x", "status": "200', id="JSON injection"),
        pytest.param('x","status":"200","sourceIp":"6.6.6.6', id="compact injection"),
        pytest.param("C:\\dir\\", id="trailing backslash"),
    ],
)
def test_a_user_agent_that_breaks_the_log_line_still_leaves_the_refusal_in_the_trail(
    running_stack: RunningStack, gateway: GatewayClient, agent: str
) -> None:
    refused = gateway.send("GET", "/api/gateway-log/hostile", headers=[("User-Agent", agent)])
    assert refused.status == 401

    snapshot = wait_for_audit(
        running_stack.state_dir,
        lambda index: bool(events_of(index, refused.request_id, "gateway")),
    )

    [logged] = events_of(snapshot.by_request, refused.request_id, "gateway")
    assert logged["outcome"]["status"] == 401
    assert logged["source"]["ip"] == "127.0.0.1"
    assert logged["source"]["user_agent"] == agent
    assert logged["anomalies"] == ["access_log_not_json"]

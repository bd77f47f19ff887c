"""No audit, no access: with the audit queue gone, requests fail closed at the gateway."""

from __future__ import annotations

import boto3
import pytest

from tests.e2e.support import (
    GatewayClient,
    RunningStack,
    alice,
    assert_gateway_error,
    backend_echo,
)

pytestmark = pytest.mark.e2e


def test_requests_fail_closed_when_the_audit_queue_is_unavailable(
    own_stack: RunningStack,
) -> None:
    state = own_stack.state
    client = GatewayClient(state)
    token = alice(state)
    assert backend_echo(client.send("GET", "/api/ledger", token=token))["path"] == "/api/ledger"

    sqs = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=state.region
    ).client("sqs", endpoint_url=state.aws_endpoint_url, region_name=state.region)
    try:
        sqs.delete_queue(QueueUrl=state.audit_queue_url)
        remaining = sqs.list_queues().get("QueueUrls", [])
    finally:
        sqs.close()
    assert state.audit_queue_url not in remaining

    refused = client.send("GET", "/api/ledger", token=token)
    # The gateway's AUTHORIZER_FAILURE response: the proxy (which adds X-Request-Id) and
    # the backend (whose JSON echoes the request) never saw the request.
    assert_gateway_error(refused, 503, "Service Unavailable")
    assert refused.header("Retry-After") == "1"
    assert refused.header("X-Request-Id") is None

    # A caller without credentials cannot be audited either: 503, not 401.
    anonymous = client.send("GET", "/api/ledger")
    assert_gateway_error(anonymous, 503, "Service Unavailable")

"""Through the real gateway: the path decided is the path served, or the request is refused."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

import pytest

from tests.e2e.support import (
    GatewayClient,
    RunningStack,
    alice,
    assert_gateway_error,
    backend_echo,
    events_of,
    token_for,
    wait_for_audit,
)

if TYPE_CHECKING:
    from gatehouse.state import DevState

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    "raw_path",
    [
        pytest.param("/api/billing#x", id="raw fragment mark"),
        pytest.param("/api/billing%23x", id="encoded fragment mark"),
        pytest.param("/api/billing%3Fx", id="encoded question mark"),
        pytest.param("/api/bill%C4%B1ng/x", id="dotless i"),
    ],
)
def test_a_path_that_would_escape_the_billing_deny_is_refused_as_ambiguous(
    gateway: GatewayClient, stack: DevState, running_stack: RunningStack, raw_path: str
) -> None:
    contractor = token_for(stack, "dave", groups=["engineering", "contractors"])

    exchange = gateway.send("GET", raw_path, token=contractor)

    assert exchange.status == 400, str(exchange)
    assert exchange.json()["message"] == "ambiguous path"
    request_id = exchange.request_id
    snapshot = wait_for_audit(
        running_stack.state_dir,
        lambda index: bool(events_of(index, request_id, "response")),
    )
    [decision] = events_of(snapshot.by_request, request_id, "decision")
    [response] = events_of(snapshot.by_request, request_id, "response")
    assert decision["decision"]["reasons"] == ["ambiguous_path"]
    assert response["outcome"]["status"] == 400
    assert response["outcome"]["upstream_latency_ms"] is None


def test_the_billing_deny_holds_in_any_letter_case(gateway: GatewayClient, stack: DevState) -> None:
    contractor = token_for(stack, "dave", groups=["engineering", "contractors"])
    for path in ("/API/Billing/x", "/api/BILLING", "/api/%62illing/x"):
        assert_gateway_error(gateway.send("GET", path, token=contractor), 403, "Forbidden")


def test_the_backend_reads_the_path_that_was_decided_and_recorded(
    gateway: GatewayClient, stack: DevState, running_stack: RunningStack
) -> None:
    exchange = gateway.send("GET", "/api/caf%c3%a9/a%20b/%41", token=alice(stack))

    echo = backend_echo(exchange)
    assert echo["target"] == "/api/caf%C3%A9/a%20b/A"  # the one canonical encoding
    request_id = exchange.request_id
    snapshot = wait_for_audit(
        running_stack.state_dir,
        lambda index: bool(events_of(index, request_id, "response")),
    )
    for event_type in ("decision", "response"):
        [event] = events_of(snapshot.by_request, request_id, event_type)
        assert event["resource"]["path"] == unquote(echo["target"]) == "/api/café/a b/A"


def test_a_method_override_parameter_is_refused(gateway: GatewayClient, stack: DevState) -> None:
    token = alice(stack)
    in_query = gateway.send("POST", "/api/projects?_method=DELETE", token=token, body=b"")
    in_form = gateway.send(
        "POST",
        "/api/projects",
        token=token,
        headers=[("Content-Type", "application/x-www-form-urlencoded")],
        body=b"name=x&_method=DELETE",
    )

    for exchange in (in_query, in_form):
        assert exchange.status == 400, str(exchange)
        assert exchange.json()["message"].startswith("ambiguous request")

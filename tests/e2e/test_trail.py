"""The audit trail is complete: every request through the shared stack is in S3, and no secret.

This module runs after the other shared-stack modules (pytest collects files in
name order), so besides its own batch it also accounts for every request they sent.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from chalicelib.reasons import Reason
from tests.e2e.support import (
    AuditIndex,
    Exchange,
    GatewayClient,
    RunningStack,
    alice,
    backend_echo,
    echoed_header,
    events_of,
    token_for,
    wait_for_audit,
)

if TYPE_CHECKING:
    from gatehouse.state import DevState

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Expected:
    """What the trail must say about one request of the batch."""

    exchange: Exchange
    outcome: str
    reason: str
    matched_rule: str | None = None
    anomaly: str | None = None
    upstream_error: bool = False


def _send_batch(gateway: GatewayClient, stack: DevState) -> tuple[list[Expected], set[str]]:
    """A mix of allowed, failed and denied requests; also the assertions the backend saw."""
    engineer = alice(stack)
    binary = bytes(random.Random(7).sample(range(256), 256))
    sent: list[Expected] = []
    assertions: set[str] = set()

    def allowed(
        exchange: Exchange, rule: str, anomaly: str | None = None, *, error: bool = False
    ) -> None:
        sent.append(Expected(exchange, "allow", "allow_rule_matched", rule, anomaly, error))

    read = gateway.send("GET", "/api/trail/read", token=engineer)
    assertions.update(echoed_header(backend_echo(read), "X-Gatehouse-Assertion"))
    allowed(read, "engineering-read")
    allowed(
        gateway.send(
            "POST",
            "/api/trail/upload?behave=binary",
            token=engineer,
            headers=[("Content-Type", "application/octet-stream")],
            body=binary,
        ),
        "engineering-write",
    )
    forged = gateway.send(
        "GET", "/api/trail/forged", token=engineer, headers=[("X-Gatehouse-Assertion", "forged")]
    )
    assertions.update(echoed_header(backend_echo(forged), "X-Gatehouse-Assertion"))
    allowed(forged, "engineering-read", anomaly="client_sent_gatehouse_header")
    allowed(
        gateway.send("GET", "/api/trail/slow?behave=slow&seconds=3", token=engineer),
        "engineering-read",
        error=True,
    )
    allowed(
        gateway.send("GET", "/api/trail/flaky?behave=status&code=503", token=engineer),
        "engineering-read",
    )
    allowed(
        gateway.send(
            "GET", "/docs/trail", token=token_for(stack, "erin", email="erin@example.com")
        ),
        "staff-read-docs",
    )
    for exchange, reason in (
        (gateway.send("GET", "/api/trail/anonymous"), "missing_credentials"),
        (
            gateway.send(
                "GET", "/api/trail/expired", token=token_for(stack, "alice", ttl_seconds=-600)
            ),
            "token_expired",
        ),
        (
            gateway.send(
                "GET", "/api/trail/aud", token=token_for(stack, "alice", audience="elsewhere")
            ),
            "wrong_audience",
        ),
    ):
        sent.append(Expected(exchange, "deny", reason))
    contractor = token_for(stack, "dave", groups=["contractors"])
    sent.append(
        Expected(
            gateway.send("DELETE", "/api/billing/trail", token=contractor),
            "deny",
            "deny_rule_matched",
            "contractors-no-billing",
        )
    )
    sent.append(Expected(gateway.send("GET", "/", token=engineer), "deny", "no_matching_rule"))
    return sent, assertions


def _complete(exchanges: list[Exchange]) -> Callable[[AuditIndex], bool]:
    def check(index: AuditIndex) -> bool:
        for exchange in exchanges:
            gateway = events_of(index, exchange.request_id, "gateway")
            if not gateway:
                return False
            if _answered_by_the_gateway_alone(gateway[0]):
                continue
            decisions = events_of(index, exchange.request_id, "decision")
            if not decisions:
                return False
            allowed = decisions[0]["decision"]["outcome"] == "allow"
            if allowed and not events_of(index, exchange.request_id, "response"):
                return False
        return True

    return check


def _check_expected(index: AuditIndex, expected: Expected) -> None:
    exchange = expected.exchange
    [decision] = events_of(index, exchange.request_id, "decision")
    assert decision["decision"]["outcome"] == expected.outcome, str(exchange)
    assert decision["decision"]["reasons"] == [expected.reason], str(exchange)
    if expected.matched_rule:
        assert expected.matched_rule in decision["decision"]["matched_rules"], str(exchange)
    assert decision["resource"]["method"] == exchange.method
    assert decision["resource"]["path"] == exchange.path.partition("?")[0]
    responses = events_of(index, exchange.request_id, "response")
    if expected.outcome == "allow":
        [response] = responses
        assert response["request"]["decision_id"] == decision["event_id"]
        assert response["outcome"]["status"] == exchange.status, str(exchange)
        anomalies = [expected.anomaly] if expected.anomaly else []
        assert response["anomalies"] == anomalies, str(exchange)
        assert (response["outcome"]["error"] is not None) is expected.upstream_error, str(exchange)
        assert response["outcome"]["bytes_in"] == len(exchange.body_sent), str(exchange)
    else:
        assert responses == [], str(exchange)


def _answered_by_the_gateway_alone(event: dict[str, Any]) -> bool:
    """API Gateway refused it before any function ran (no route for the method, ...)."""
    details = event["gateway"]
    return details["served_by"] == "gateway" and details["authorizer_status"] is None


def _check_any(index: AuditIndex, exchange: Exchange) -> None:
    """What holds for every request the shared stack served (authorizer cache off)."""
    # API Gateway's access log has every request, whoever answered it.
    [gateway] = events_of(index, exchange.request_id, "gateway")
    assert gateway["outcome"]["status"] == exchange.status, str(exchange)
    if _answered_by_the_gateway_alone(gateway):
        assert [e["event_type"] for e in index[exchange.request_id]] == ["gateway"]
        return
    decisions = events_of(index, exchange.request_id, "decision")
    assert len(decisions) == 1, f"{exchange}: {len(decisions)} decision events"
    decision = decisions[0]["decision"]
    assert decision["decided_by"] == "authorizer", str(exchange)
    assert decision["cached"] is False, str(exchange)
    responses = events_of(index, exchange.request_id, "response")
    if any(Reason(r).is_cors_preflight for r in decision["reasons"]):
        # Answered by Gatehouse itself, never forwarded: its decision event is its record.
        assert responses == [], str(exchange)
        assert exchange.status == (204 if decision["outcome"] == "allow" else 403), str(exchange)
        return
    if decision["outcome"] == "allow":
        assert len(responses) == 1, f"{exchange}: {len(responses)} response events"
        assert responses[0]["outcome"]["status"] == exchange.status, str(exchange)
    elif any(Reason(r).is_ambiguous for r in decision["reasons"]):
        # Let through to the proxy, which refuses it with 400 and records that answer.
        assert [r["outcome"]["status"] for r in responses] == [400], str(exchange)
        assert exchange.status == 400, str(exchange)
    else:
        assert responses == [], str(exchange)
        credential_failure = all(Reason(r).is_credential_failure for r in decision["reasons"])
        assert exchange.status == (401 if credential_failure else 403), str(exchange)


def test_every_request_is_in_the_trail_with_its_reasons_and_no_secret(
    gateway: GatewayClient, stack: DevState, running_stack: RunningStack
) -> None:
    expected, assertions = _send_batch(gateway, stack)
    # The health endpoint decides nothing and is not audited per hit (only its access log
    # line is kept): every other request must be in the trail.
    everything = [e for e in gateway.exchanges if not e.path.startswith("/.gatehouse/health")]
    snapshot = wait_for_audit(running_stack.state_dir, _complete(everything))
    index = snapshot.by_request

    missing = [str(e) for e in everything if e.request_id not in index]
    assert not missing, "requests with no audit event:\n" + "\n".join(missing)
    for item in expected:
        _check_expected(index, item)
    for exchange in everything:
        _check_any(index, exchange)

    secrets = {e.token for e in everything if e.token} | assertions
    assert secrets
    assert len(assertions) == 2
    leaked = [
        secret[:24] + "..."
        for secret in secrets
        if secret in snapshot.raw or secret.rsplit(".", 1)[-1] in snapshot.raw
    ]
    assert not leaked, f"token material in the stored audit records: {leaked}"

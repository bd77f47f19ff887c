"""The gateway's authorizer result cache (``gatehouse dev --authorizer-ttl 300``)."""

from __future__ import annotations

import json
import time

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

pytestmark = pytest.mark.e2e


def test_cached_answer_covers_the_whole_api_and_is_redecided_by_the_proxy(
    cached_stack: RunningStack,
) -> None:
    state = cached_stack.state
    client = GatewayClient(state)
    token = alice(state)

    # Two routes under two different rules (engineering-read, staff-read-docs), one token.
    first = client.send("GET", "/api/first", token=token)
    second = client.send("GET", "/docs/handbook", token=token)
    assert backend_echo(first)["path"] == "/api/first"
    second_echo = backend_echo(second)  # a policy naming only /api/first would 403 here
    assert second_echo["path"] == "/docs/handbook"
    assert second_echo["assertion"]["claims"]["sub"] == "alice"

    # The cache is keyed by the token: another caller is not served alice's answer.
    # Denied, and answered by the proxy (a cached gateway Deny would replay unaudited).
    contractor = token_for(state, "dave", groups=["contractors"])
    assert_gateway_error(
        client.send("GET", "/api/billing/invoices", token=contractor), 403, "forbidden"
    )

    ids = (first.request_id, second.request_id)
    snapshot = wait_for_audit(
        cached_stack.state_dir,
        lambda index: all(
            events_of(index, rid, "decision") and events_of(index, rid, "response") for rid in ids
        ),
    )
    index = snapshot.by_request

    [first_decision] = events_of(index, first.request_id, "decision")
    assert first_decision["decision"]["decided_by"] == "authorizer"
    assert first_decision["decision"]["cached"] is False
    assert first_decision["decision"]["reasons"] == ["allow_rule_matched"]

    second_decisions = events_of(index, second.request_id, "decision")
    assert [d["decision"]["decided_by"] for d in second_decisions] == ["proxy"], (
        "the second request must be served from the cache (no authorizer invocation) "
        "and re-decided by the proxy"
    )
    [redecision] = second_decisions
    assert redecision["decision"]["cached"] is True
    assert redecision["decision"]["outcome"] == "allow"
    assert redecision["decision"]["reasons"] == ["allow_rule_matched"]
    assert redecision["decision"]["matched_rules"] == ["staff-read-docs"]
    assert redecision["principal"]["subject"] == "alice"

    [second_response] = events_of(index, second.request_id, "response")
    assert second_response["outcome"]["status"] == 200
    assert second_response["request"]["decision_id"] == redecision["event_id"]

    # Break-glass under the cached answer: the same request again is decided by the proxy
    # alone, and both uses reach the BreakGlassUsed metric that pages someone.
    oncall = token_for(state, "dana", groups=["oncall"])
    justified = [("X-Gatehouse-Justification", "INC-4711 stale cache takes checkout down")]
    for _ in range(2):
        echo = backend_echo(client.send("DELETE", "/api/cache", token=oncall, headers=justified))
        assert echo["assertion"]["claims"]["sub"] == "dana"
    assert _metric_count(cached_stack, "BreakGlassUsed") == 2


def _metric_count(stack: RunningStack, name: str) -> float:
    """The sum of ``name`` over the EMF lines the stack printed (polled: output is buffered)."""
    deadline = time.monotonic() + 10
    while True:
        total = 0.0
        for line in stack.log_tail(100_000).splitlines():
            start = line.find('{"_aws"')
            if start < 0:
                continue
            value = json.loads(line[start:]).get(name)
            total += sum(value) if isinstance(value, list) else (value or 0)
        if total >= 2 or time.monotonic() > deadline:
            return total
        time.sleep(0.2)

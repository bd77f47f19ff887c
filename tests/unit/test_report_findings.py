"""The report's findings: security alerts and the compliance controls, from hand-built facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gatehouse.report.findings import alerts, controls, deny_spikes, reason_totals
from gatehouse.report.model import (
    AnomalyEvent,
    ElevatedAccess,
    GrantEvent,
    LedgerCoverage,
    NewSource,
    PolicyChange,
    PolicyVersionInForce,
    ReasonCount,
    SensitiveAccess,
    TimeBucket,
)

START = datetime(2026, 3, 2, tzinfo=UTC)


def buckets(*denies: int) -> list[TimeBucket]:
    return [TimeBucket(START + timedelta(hours=n), deny=d) for n, d in enumerate(denies)]


@pytest.mark.parametrize(
    ("denies", "spikes"),
    [
        ((), []),
        ((0, 0, 9, 0), []),  # under the floor of 10
        ((0, 0, 10, 0), [2]),  # median 0: the floor decides
        ((4, 4, 11, 4), []),  # median 4: 3x is 12
        ((4, 4, 12, 4), [2]),
        ((20, 20, 20, 20), []),  # steady is not a spike
        ((0, 30, 0, 0, 31), [1, 4]),
    ],
)
def test_deny_spikes(denies: tuple[int, ...], spikes: list[int]) -> None:
    series = buckets(*denies)
    assert deny_spikes(series) == [series[n] for n in spikes]


def test_reason_totals_count_each_code_of_a_decision() -> None:
    reasons = [
        ReasonCount("deny", "mfa_required,outside_hours", 2),
        ReasonCount("deny", "mfa_required", 3),
        ReasonCount("allow", "allow_rule_matched", 7),
    ]
    assert reason_totals(reasons, "deny") == {"mfa_required": 5, "outside_hours": 2}
    assert reason_totals(reasons)["allow_rule_matched"] == 7


def elevated(break_glass: bool, justification: str | None = "incident 42") -> ElevatedAccess:
    return ElevatedAccess(
        time=START,
        request_id="req-1",
        principal="alice@example.com",
        method="POST",
        path="/admin/reset",
        route="admin",
        decision="allow",
        status=200,
        break_glass=break_glass,
        grant_id=None if break_glass else "g-1",
        justification=justification,
        requested_by=None,
        requested_at=None,
        approved_by=None if break_glass else "carol@example.com",
        approved_at=None,
        expires_at=None,
        first_used_at=None,
        ended_at=None,
    )


def test_alerts_name_each_finding_most_severe_first() -> None:
    found = alerts(
        buckets=buckets(0, 12, 0),
        reasons=[
            ReasonCount("error", "policy_unavailable", 2),
            ReasonCount("deny", "bad_signature", 3),
            ReasonCount("deny", "token_expired", 50),
        ],
        elevated=[elevated(True), elevated(False)],
        sensitive=[SensitiveAccess("bob@example.com", "admin", 4, START, START)],
        anomalies=[
            AnomalyEvent(
                START, "eve", "198.51.100.7", "curl", "GET", "/", "client_sent_gatehouse_header"
            )
        ],
        new_sources=[
            NewSource("bob@example.com", "source_ip", "198.51.100.1", START, START, 1, False),
            NewSource("bob@example.com", "user_agent", "curl/8", START, START, 1, False),
        ],
    )
    assert [(a.kind, a.severity) for a in found] == [
        ("fail_closed", "high"),
        ("anomaly", "high"),
        ("break_glass", "high"),
        ("forged_tokens", "medium"),
        ("deny_spike", "medium"),
        ("sensitive_route", "low"),
        ("new_sources", "low"),
    ]
    summaries = {a.kind: a.summary for a in found}
    assert summaries["fail_closed"] == "2 requests could not be decided and were refused"
    assert summaries["anomaly"] == "1 events flagged client_sent_gatehouse_header"
    assert summaries["break_glass"] == (
        "alice@example.com used break-glass on POST /admin/reset (allow); "
        "justification: incident 42"
    )
    assert summaries["forged_tokens"] == "3 requests carried forged or foreign tokens"
    assert summaries["deny_spike"] == "12 denies in the period starting 2026-03-02 01:00 UTC"
    assert summaries["new_sources"] == (
        "1 principals used 2 new source address / user agent pairs: bob@example.com"
    )


def test_quiet_window_has_no_alerts() -> None:
    found = alerts(
        buckets=buckets(0, 1, 0),
        reasons=[
            ReasonCount("allow", "allow_rule_matched", 5),
            ReasonCount("deny", "token_expired", 1),
        ],
        elevated=[elevated(False)],
        sensitive=[],
        anomalies=[],
        new_sources=[],
    )
    assert found == []


def control_map(**overrides: object) -> dict[str, tuple[str, str]]:
    arguments: dict[str, object] = {
        "reasons": [],
        "versions": [],
        "changes": [],
        "grant_events": [],
        "elevated": [],
        "ledger": LedgerCoverage(0, None, None, {}),
    }
    arguments.update(overrides)
    return {c.name: (c.status, c.evidence) for c in controls(**arguments)}  # type: ignore[arg-type]


def test_controls_with_evidence() -> None:
    found = control_map(
        reasons=[
            ReasonCount("allow", "allow_rule_matched", 10),
            ReasonCount("allow", "grant_matched", 2),
            ReasonCount("deny", "no_matching_rule", 4),
            ReasonCount("deny", "no_route", 1),
            ReasonCount("deny", "mfa_required", 3),
            ReasonCount("deny", "missing_credentials", 6),
        ],
        versions=[PolicyVersionInForce(3, "sha256:abc", 26, START, START)],
        changes=[PolicyChange(START, "apply", 3, 2, 3, "sha256:old", "sha256:abc", "", "arn:op")],
        grant_events=[
            GrantEvent(START, "requested", "g-1", "alice", "alice", None, "why", "admin", None),
            GrantEvent(START, "approved", "g-1", "alice", "carol", "carol", "why", "admin", None),
        ],
        elevated=[elevated(False), elevated(False), elevated(True)],
        ledger=LedgerCoverage(40, 7, 46, {"decision": 26, "response": 14}),
    )
    assert found["Default deny"] == (
        "in force",
        "5 requests matched no rule or route and were denied; "
        "12 allowed decisions each name an allow rule, a grant or break-glass",
    )
    assert found["Authentication required"] == (
        "in force",
        "6 requests without valid credentials refused (missing_credentials 6)",
    )
    assert found["Condition: MFA required"][0] == "enforced"
    assert found["Condition: Working hours"][0] == "not observed"
    assert found["Versioned policy"] == (
        "in force",
        "versions in force: v3 (sha256:abc); 1 changes in the window, 1 naming their operator",
    )
    assert found["Just-in-time grants"] == (
        "in use",
        "grant events: approved 1, requested 1; 1 of 1 approvals name their approver; "
        "2 requests made under a grant",
    )
    assert found["Break-glass"] == ("used", "1 uses, 1 with a justification")
    assert found["Tamper-evident audit ledger"] == (
        "recorded",
        "40 events in the window (sequences 7 to 46); verify with gatehouse audit verify",
    )


@pytest.mark.parametrize(
    ("overrides", "control", "status"),
    [
        ({"reasons": [ReasonCount("allow", "", 1)]}, "Default deny", "exception"),
        ({"reasons": [ReasonCount("allow", "no_route", 1)]}, "Default deny", "exception"),
        (
            {"grant_events": [GrantEvent(START, "approved", "g", "a", "b", None, "j", "r", None)]},
            "Just-in-time grants",
            "exception",
        ),
        ({"elevated": [elevated(True, justification=None)]}, "Break-glass", "exception"),
        ({}, "Default deny", "not exercised"),
        ({}, "Tamper-evident audit ledger", "no events"),
    ],
)
def test_controls_flag_exceptions(overrides: dict[str, object], control: str, status: str) -> None:
    assert control_map(**overrides)[control][0] == status

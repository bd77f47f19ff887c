"""What the collected facts mean: security alerts and the compliance controls summary.

Pure functions over the report's data (no queries), so each rule is tested
on hand-built inputs.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence

from gatehouse.report.model import (
    VERIFY_COMMAND,
    Alert,
    AnomalyEvent,
    Control,
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

# A bucket is a deny spike when it holds at least this many denies ...
DENY_SPIKE_MIN = 10
# ... and at least this many times the window's median denies per bucket.
DENY_SPIKE_FACTOR = 3

ALLOW_REASONS = frozenset({"allow_rule_matched", "grant_matched", "break_glass"})
DEFAULT_DENY_REASONS = frozenset({"no_matching_rule", "no_route"})
CREDENTIAL_FAILURES = frozenset(
    {
        "missing_credentials",
        "malformed_token",
        "token_too_large",
        "unsupported_algorithm",
        "algorithm_mismatch",
        "unknown_issuer",
        "unknown_key",
        "bad_signature",
        "missing_claim",
        "invalid_claim",
        "wrong_audience",
        "token_expired",
        "token_not_yet_valid",
    }
)
# Credential failures that a stale client does not produce: someone is forging tokens.
FORGERY_SIGNS = frozenset(
    {"bad_signature", "algorithm_mismatch", "unsupported_algorithm", "unknown_key"}
)
CONDITIONS = (
    ("MFA required", ("mfa_required",)),
    ("Maximum authentication age", ("auth_too_old",)),
    ("Working hours", ("outside_hours",)),
    ("Source networks", ("source_not_allowed",)),
)


def reason_totals(reasons: Sequence[ReasonCount], outcome: str | None = None) -> Counter[str]:
    """Decisions per single reason code (a decision with two codes counts for each)."""
    totals: Counter[str] = Counter()
    for row in reasons:
        if outcome is not None and row.outcome != outcome:
            continue
        for code in filter(None, row.reasons.split(",")):
            totals[code] += row.count
    return totals


def deny_spikes(buckets: Sequence[TimeBucket]) -> list[TimeBucket]:
    """The buckets whose denies stand out: >= DENY_SPIKE_MIN and >= 3x the median."""
    if not buckets:
        return []
    median = statistics.median(bucket.deny for bucket in buckets)
    threshold = max(DENY_SPIKE_MIN, DENY_SPIKE_FACTOR * median)
    return [bucket for bucket in buckets if bucket.deny >= threshold]


def alerts(
    *,
    buckets: Sequence[TimeBucket],
    reasons: Sequence[ReasonCount],
    elevated: Sequence[ElevatedAccess],
    sensitive: Sequence[SensitiveAccess],
    anomalies: Sequence[AnomalyEvent],
    new_sources: Sequence[NewSource],
    unreadable: Sequence[str] = (),
) -> list[Alert]:
    """Everything security should look at, most severe first.

    ``unreadable`` are the engine's warnings about trail data it could not
    read (the report is built from the rest): each is a high alert, since
    events nobody can see may be the ones that matter.
    """
    found: list[Alert] = [Alert("unreadable_trail", "high", warning) for warning in unreadable]
    errors = sum(row.count for row in reasons if row.outcome == "error")
    if errors:
        found.append(
            Alert("fail_closed", "high", f"{errors} requests could not be decided and were refused")
        )
    flags = Counter(flag for event in anomalies for flag in event.anomalies.split(",") if flag)
    found += [
        Alert("anomaly", "high", f"{count} events flagged {flag}")
        for flag, count in sorted(flags.items())
    ]
    found += [
        Alert(
            "break_glass",
            "high",
            f"{use.principal} used break-glass on {use.method} {use.path} "
            f"({use.decision or 'no decision'}); justification: {use.justification or '(none)'}",
        )
        for use in elevated
        if use.break_glass
    ]
    denied = reason_totals(reasons, "deny")
    forged = sum(denied[code] for code in FORGERY_SIGNS)
    if forged:
        found.append(
            Alert("forged_tokens", "medium", f"{forged} requests carried forged or foreign tokens")
        )
    found += [
        Alert(
            "deny_spike",
            "medium",
            f"{bucket.deny} denies in the period starting {bucket.start:%Y-%m-%d %H:%M} UTC",
        )
        for bucket in deny_spikes(buckets)
    ]
    found += [
        Alert(
            "sensitive_route",
            "low",
            f"{access.principal} was allowed {access.count} requests on sensitive route "
            f"{access.route}",
        )
        for access in sensitive
    ]
    principals = sorted({source.principal for source in new_sources})
    if principals:
        found.append(
            Alert(
                "new_sources",
                "low",
                f"{len(principals)} principals used {len(new_sources)} new source address / "
                f"user agent pairs: {', '.join(principals[:10])}",
            )
        )
    return found


def _default_deny(reasons: Sequence[ReasonCount]) -> Control:
    fallen_through = sum(reason_totals(reasons, "deny")[code] for code in DEFAULT_DENY_REASONS)
    unexplained = sum(
        row.count
        for row in reasons
        if row.outcome == "allow" and not ALLOW_REASONS.intersection(row.reasons.split(","))
    )
    allowed_total = sum(row.count for row in reasons if row.outcome == "allow")
    evidence = (
        f"{fallen_through} requests matched no rule or route and were denied; "
        f"{allowed_total} allowed decisions each name an allow rule, a grant or break-glass"
    )
    if unexplained:
        return Control(
            "Default deny",
            "exception",
            f"{unexplained} allowed decisions carry no allow reason; " + evidence,
        )
    return Control("Default deny", "in force" if reasons else "not exercised", evidence)


def _conditions(reasons: Sequence[ReasonCount]) -> list[Control]:
    denied = reason_totals(reasons, "deny")
    controls = []
    for name, codes in CONDITIONS:
        enforced = sum(denied[code] for code in codes)
        controls.append(
            Control(
                f"Condition: {name}",
                "enforced" if enforced else "not observed",
                f"{enforced} requests denied because the condition did not hold "
                f"({', '.join(codes)})",
            )
        )
    return controls


def _authentication(reasons: Sequence[ReasonCount]) -> Control:
    denied = reason_totals(reasons, "deny")
    failures = {code: denied[code] for code in sorted(CREDENTIAL_FAILURES) if denied[code]}
    listed = ", ".join(f"{code} {count}" for code, count in failures.items()) or "none"
    return Control(
        "Authentication required",
        "in force" if reasons else "not exercised",
        f"{sum(failures.values())} requests without valid credentials refused ({listed})",
    )


def _policy(versions: Sequence[PolicyVersionInForce], changes: Sequence[PolicyChange]) -> Control:
    listed = ", ".join(f"v{v.version} ({v.checksum})" for v in versions) or "none decided"
    unattributed = sum(1 for change in changes if not change.operator)
    evidence = (
        f"versions in force: {listed}; {len(changes)} changes in the window, "
        f"{len(changes) - unattributed} naming their operator"
    )
    return Control("Versioned policy", "in force" if versions else "not exercised", evidence)


def _grants(events: Sequence[GrantEvent], elevated: Sequence[ElevatedAccess]) -> list[Control]:
    actions = Counter(event.action or "?" for event in events)
    approvals = [event for event in events if event.action == "approved"]
    without_approver = sum(1 for event in approvals if not event.approver)
    under_grants = sum(1 for access in elevated if access.grant_id and not access.break_glass)
    glass = [access for access in elevated if access.break_glass]
    unjustified = sum(1 for access in glass if not access.justification)
    listed = ", ".join(f"{action} {count}" for action, count in sorted(actions.items())) or "none"
    return [
        Control(
            "Just-in-time grants",
            "exception" if without_approver else ("in use" if events else "not used"),
            f"grant events: {listed}; {len(approvals) - without_approver} of {len(approvals)} "
            f"approvals name their approver; {under_grants} requests made under a grant",
        ),
        Control(
            "Break-glass",
            "exception" if unjustified else ("used" if glass else "not used"),
            f"{len(glass)} uses, {len(glass) - unjustified} with a justification",
        ),
    ]


def controls(
    *,
    reasons: Sequence[ReasonCount],
    versions: Sequence[PolicyVersionInForce],
    changes: Sequence[PolicyChange],
    grant_events: Sequence[GrantEvent],
    elevated: Sequence[ElevatedAccess],
    ledger: LedgerCoverage,
) -> list[Control]:
    """The controls in force in the window, each with the evidence the events give."""
    errors = sum(row.count for row in reasons if row.outcome == "error")
    span = (
        f"sequences {ledger.first_sequence} to {ledger.last_sequence}"
        if ledger.events
        else "no events"
    )
    return [
        _default_deny(reasons),
        _authentication(reasons),
        *_conditions(reasons),
        Control(
            "Fail closed",
            "in force" if reasons else "not exercised",
            f"{errors} requests that could not be decided were refused",
        ),
        _policy(versions, changes),
        *_grants(grant_events, elevated),
        Control(
            "Tamper-evident audit ledger",
            "recorded" if ledger.events else "no events",
            f"{ledger.events} events in the window ({span}); verify with {VERIFY_COMMAND}",
        ),
    ]

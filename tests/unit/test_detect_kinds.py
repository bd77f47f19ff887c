"""Each detection rule kind, table-driven: which events match, as what subject and value."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from chalicelib.detect.kinds import KINDS
from chalicelib.detect.rules import parse_rules

ISSUER = "https://idp.example.com"
T0 = "2026-12-08T10:00:00.000Z"  # a Tuesday
NIGHT = "2026-12-08T23:30:00.000Z"
SUNDAY = "2026-12-06T12:00:00.000Z"


def event(
    event_type: str = "decision",
    *,
    outcome: str | None = "deny",
    reasons: list[str] | None = None,
    subject: str | None = "alice",
    ip: str | None = "203.0.113.7",
    agent: str | None = "curl/8.5.0",
    token_id: str | None = None,
    browser_session: str | None = None,
    break_glass: bool = False,
    sensitive: bool | None = False,
    route: str | None = "demo",
    at: str | None = T0,
    grant: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An event in wire form, with only what rules read."""
    principal: dict[str, Any] | None = None
    if subject is not None:
        principal = {
            "issuer": ISSUER,
            "subject": subject,
            "email": f"{subject}@example.com",
            "token_id": token_id,
        }
        if browser_session is not None:
            principal["browser_session_id"] = browser_session
    return {
        "schema_version": 1,
        "event_id": "e-1",
        "event_type": event_type,
        "event_time": at,
        "principal": principal,
        "source": {"ip": ip, "user_agent": agent},
        "resource": {"route_id": route, "sensitive": sensitive},
        "decision": None
        if outcome is None
        else {"outcome": outcome, "reasons": reasons or ["no_matching_rule"]},
        "elevation": {"break_glass": break_glass, "grant_id": None},
        "grant": grant,
    }


def params(kind: str, **given: Any) -> dict[str, Any]:
    """The kind's parameters as the rules parser fills them (defaults, hours compiled)."""
    rule = {"name": "r", "enabled": True, "severity": "low", "kind": kind, **_required(kind)}
    rule.update(given)
    (parsed,) = parse_rules({"version": 1, "rules": [rule]}, "test").rules
    return dict(parsed.params)


def matched(kind: str, the_event: dict[str, Any], **given: Any) -> tuple[str, str | None] | None:
    match_function = KINDS[kind].match
    assert match_function is not None
    found = match_function(params(kind, **given), the_event)
    return None if found is None else (found.subject, found.value)


ALICE = f"{ISSUER} alice"

CASES = [
    # deny_burst_principal: denied decisions of a principal, by principal
    ("deny_burst_principal", "a denied decision", event(), {}, (ALICE, None)),
    ("deny_burst_principal", "an allowed one", event(outcome="allow"), {}, None),
    ("deny_burst_principal", "an error", event(outcome="error"), {}, None),
    ("deny_burst_principal", "anonymous", event(subject=None), {}, None),
    ("deny_burst_principal", "a response event", event("response"), {}, None),
    ("deny_burst_principal", "no time", event(at=None), {}, None),
    ("deny_burst_principal", "a bad time", event(at="yesterday"), {}, None),
    # deny_burst_ip: denied decisions by source IP, anonymous ones included
    ("deny_burst_ip", "a denied decision", event(), {}, ("203.0.113.7", None)),
    ("deny_burst_ip", "anonymous (no token)", event(subject=None), {}, ("203.0.113.7", None)),
    ("deny_burst_ip", "no source IP", event(ip=None), {}, None),
    ("deny_burst_ip", "allowed", event(outcome="allow"), {}, None),
    # token_many_ips: by token id, valued by IP, whatever the outcome
    ("token_many_ips", "a token's use", event(token_id="jti-1"), {}, ("jti-1", "203.0.113.7")),
    (
        "token_many_ips",
        "allowed too",
        event(outcome="allow", token_id="jti-1"),
        {},
        ("jti-1", "203.0.113.7"),
    ),
    ("token_many_ips", "no token id", event(), {}, None),
    ("token_many_ips", "no IP", event(token_id="jti-1", ip=None), {}, None),
    ("token_many_ips", "a gateway event", event("gateway", token_id="jti-1"), {}, None),
    # break_glass: allowed decisions with elevation.break_glass
    (
        "break_glass",
        "break-glass access",
        event(outcome="allow", break_glass=True),
        {},
        (ALICE, None),
    ),
    ("break_glass", "a plain allow", event(outcome="allow"), {}, None),
    ("break_glass", "refused break-glass", event(break_glass=True), {}, None),
    # sensitive_off_hours: allowed, sensitive, outside the hours
    (
        "sensitive_off_hours",
        "sensitive at night",
        event(outcome="allow", sensitive=True, at=NIGHT),
        {},
        (ALICE, None),
    ),
    (
        "sensitive_off_hours",
        "sensitive on Sunday",
        event(outcome="allow", sensitive=True, at=SUNDAY),
        {},
        (ALICE, None),
    ),
    ("sensitive_off_hours", "sensitive in hours", event(outcome="allow", sensitive=True), {}, None),
    ("sensitive_off_hours", "not sensitive at night", event(outcome="allow", at=NIGHT), {}, None),
    (
        "sensitive_off_hours",
        "a listed route at night",
        event(outcome="allow", route="payroll", at=NIGHT),
        {"routes": ["payroll"]},
        (ALICE, None),
    ),
    ("sensitive_off_hours", "denied at night", event(sensitive=True, at=NIGHT), {}, None),
    (
        "sensitive_off_hours",
        "in Berlin's evening hours",
        event(outcome="allow", sensitive=True, at="2026-12-08T18:30:00.000Z"),
        {"hours": {"tz": "Europe/Berlin", "from": "08:00", "to": "20:00"}},
        None,
    ),
    (
        "sensitive_off_hours",
        "after Berlin's hours",
        event(outcome="allow", sensitive=True, at="2026-12-08T19:30:00.000Z"),
        {"hours": {"tz": "Europe/Berlin", "from": "08:00", "to": "20:00"}},
        (ALICE, None),
    ),
    # first_seen_source: allowed decisions of a principal, valued by IP or user agent
    ("first_seen_source", "an IP", event(outcome="allow"), {}, (ALICE, "203.0.113.7")),
    (
        "first_seen_source",
        "a user agent (digested)",
        event(outcome="allow"),
        {"field": "user_agent"},
        (ALICE, hashlib.sha256(b"curl/8.5.0").hexdigest()[:16]),
    ),
    ("first_seen_source", "denied", event(), {}, None),
    ("first_seen_source", "anonymous", event(outcome="allow", subject=None), {}, None),
    # grant_misuse: listed reasons, or refused grant calls with a listed status
    (
        "grant_misuse",
        "a refused grant call (409)",
        event("grant", outcome=None, grant={"action": "refused", "status": 409}),
        {},
        (ALICE, None),
    ),
    (
        "grant_misuse",
        "a refused grant call (403)",
        event("grant", outcome=None, grant={"action": "refused", "status": 403}),
        {},
        None,
    ),
    (
        "grant_misuse",
        "an approval",
        event("grant", outcome=None, grant={"action": "approved", "status": None}),
        {},
        None,
    ),
    (
        "grant_misuse",
        "a listed reason",
        event(reasons=["no_matching_rule"]),
        {"reasons": ["no_matching_rule"]},
        (ALICE, None),
    ),
    *(
        ("grant_misuse", f"by default: {code}", event(reasons=[code]), {}, (ALICE, None))
        for code in ("grant_expired", "grant_revoked", "grant_denied")
    ),
    ("grant_misuse", "by default: no rule", event(reasons=["no_matching_rule"]), {}, None),
    (
        "grant_misuse",
        "an unlisted reason",
        event(reasons=["mfa_required"]),
        {"reasons": ["no_matching_rule"]},
        None,
    ),
    # revoked_session_used: session_revoked, by browser session
    (
        "revoked_session_used",
        "a revoked session",
        event(reasons=["session_revoked"], browser_session="bs-1"),
        {},
        ("bs-1", None),
    ),
    (
        "revoked_session_used",
        "no session id: the principal",
        event(reasons=["session_revoked"]),
        {},
        (ALICE, None),
    ),
    (
        "revoked_session_used",
        "nobody: the IP",
        event(reasons=["session_revoked"], subject=None),
        {},
        ("203.0.113.7", None),
    ),
    ("revoked_session_used", "an idle session", event(reasons=["session_idle"]), {}, None),
]


@pytest.mark.parametrize(
    ("kind", "the_event", "given", "expected"),
    [pytest.param(kind, e, given, expected, id=f"{kind}: {title}")
     for kind, title, e, given, expected in CASES],
)  # fmt: skip
def test_what_each_kind_matches(
    kind: str, the_event: dict[str, Any], given: dict[str, Any], expected: Any
) -> None:
    assert matched(kind, the_event, **given) == expected


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_no_kind_matches_an_alert_event_or_rubbish(kind: str) -> None:
    match_function = KINDS[kind].match
    if match_function is None:
        assert KINDS[kind].style == "scheduled"
        assert KINDS[kind].check is not None
        return
    for rubbish in ({}, {"event_type": "decision"}, {"event_type": "alert", "alert": {}}):
        assert match_function(params(kind), rubbish) is None


OFFICE = {"tz": "UTC", "days": ["mon", "tue", "wed", "thu", "fri"], "from": "08:00", "to": "20:00"}


def _required(kind: str) -> dict[str, Any]:
    """Parameters a kind cannot do without."""
    return {"hours": OFFICE} if kind == "sensitive_off_hours" else {}


def test_every_event_kind_is_tested_here() -> None:
    event_kinds = {name for name, kind in KINDS.items() if kind.style != "scheduled"}
    assert {kind for kind, *_ in CASES} == event_kinds


def test_the_kinds_read_the_events_the_builders_make() -> None:
    from chalicelib.audit.schema import DecisionRecord, RequestRecord, ResourceRecord, build_event
    from chalicelib.audit.sections import ElevationRecord
    from chalicelib.identity import Identity
    from chalicelib.reasons import Reason

    identity = Identity(ISSUER, "dana", "gatehouse", 1_900_000_000, token_id="jti-9")
    request = RequestRecord(
        "r1", None, None, None, "dev", "198.51.100.4", "ua", "h", "DELETE", "/api/cache", None
    )
    built = build_event(
        "decision",
        request,
        identity=identity,
        decision=DecisionRecord(
            "allow", [Reason.BREAK_GLASS], elevation=ElevationRecord(break_glass=True)
        ),
        resource=ResourceRecord("demo", "http://b", sensitive=True),
    )
    assert matched("break_glass", built) == (f"{ISSUER} dana", None)
    assert matched("token_many_ips", built) == ("jti-9", "198.51.100.4")
    assert matched("first_seen_source", built) == (f"{ISSUER} dana", "198.51.100.4")

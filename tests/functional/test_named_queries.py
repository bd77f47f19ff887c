"""Every named query, on the local engine, gives the answer Athena would: worked out by hand.

Each test builds a small trail the way the emitters build it
(:func:`~chalicelib.audit.schema.build_event`, ``build_admin_event`` and
:func:`~chalicelib.audit.gateway_events.gateway_event`, then the ledger's
``"ledger": {"sequence": N}``), runs one query of ``infra/athena/queries``
through :class:`gatehouse.query.LocalEngine`, and compares every row with the
answer written out below it. The data sits on the edges that a query or the
Athena-to-DuckDB translation could get wrong: window bounds (start inclusive,
end exclusive) at the millisecond, neighbouring hour and day partitions, a
request whose first event precedes the window, deny beating allow within one
request, requests API Gateway answered alone, principals found by email in
any case or by subject, percentiles on data where Athena's approx_percentile
is exact.

A request here is what the stack writes for it: API Gateway's access-log line
(``gateway``, timed at the request's start), the authorizer's ``decision``
5 ms later and the proxy's ``response`` 20 ms later; a test leaves out the
events a given path through the stack does not write.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.audit.gateway_events import gateway_event
from chalicelib.audit.schema import (
    AwsRecord,
    DecisionRecord,
    ElevationRecord,
    RequestRecord,
    ResourceRecord,
    ResponseRecord,
    build_admin_event,
    build_event,
    build_session_event,
    utc_timestamp,
)
from chalicelib.audit.sections import SessionSection
from chalicelib.grants.events import grant_details
from chalicelib.identity import Identity
from chalicelib.policy.grant import Grant
from chalicelib.reasons import Reason
from gatehouse.dev.cloudtrail import IssuedSession, upstream_call_record
from gatehouse.query import LocalEngine, QueryError, load_named_query, named_queries

ISSUER = "https://idp.example.com"
HOST = "api.example.com"
STAGE = "dev"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/orders-reader"

ALICE = Identity(ISSUER, "sub-alice", "gatehouse", 1_900_000_000, email="alice@example.com")
BOB = Identity(ISSUER, "sub-bob", "gatehouse", 1_900_000_000, email="bob@example.com")
# Carol's issuer sends no verified email: she is known by subject alone.
CAROL = Identity(ISSUER, "sub-carol", "gatehouse", 1_900_000_000, groups=frozenset({"sre"}))
DAVE = Identity(ISSUER, "sub-dave", "gatehouse", 1_900_000_000, email="dave@example.com")

# The window of most tests: [10:00, 12:00) on 10 March 2026.
FROM = "2026-03-10 10:00:00"
TO = "2026-03-10 12:00:00"
WINDOW = {"from": FROM, "to": TO}


def at(text: str) -> datetime:
    """``"2026-03-10 10:00:00.000"`` as an aware UTC time."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def ts(text: str) -> datetime:
    """A result timestamp: the engines return naive UTC datetimes."""
    return datetime.fromisoformat(text)


MS = timedelta(milliseconds=1)


@dataclass
class Trail:
    """A ledger in the making: events in stored order, each with its sequence."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, event: dict[str, Any], moment: datetime) -> dict[str, Any]:
        """Store ``event`` as of ``moment`` (its event_time), next in the ledger."""
        event["event_time"] = utc_timestamp(moment.timestamp())
        event["ledger"] = {"sequence": len(self.events)}
        self.events.append(event)
        return event

    # --- one event each, as the stack's parts write them ---

    def gateway(
        self,
        request_id: str,
        moment: datetime,
        *,
        status: int,
        subject: str | None = None,
        method: str = "GET",
        path: str = "/api/orders/1",
        latency_ms: int = 30,
        bytes_out: int = 100,
        response_type: str | None = None,
        served: bool = True,
        source_ip: str = "203.0.113.7",
        user_agent: str = "curl/8.5.0",
    ) -> dict[str, Any]:
        """API Gateway's access-log line (``served``: the request reached the proxy)."""
        line = {
            "requestId": request_id,
            "requestTime": str(round(moment.timestamp() * 1000)),
            "httpMethod": method,
            "resourcePath": "/{proxy+}",
            "path": path,
            "status": str(status),
            "responseLength": str(bytes_out),
            "responseLatency": str(latency_ms),
            "integrationStatus": str(status) if served else "-",
            "integrationLatency": str(latency_ms - 5) if served else "-",
            "principalId": subject or "-",
            "errorResponseType": response_type or "-",
            "sourceIp": source_ip,
            "userAgent": user_agent,
            "domainName": HOST,
            "stage": STAGE,
        }
        return self.add(gateway_event(line, stage=STAGE), moment)

    def decision(
        self,
        request_id: str,
        moment: datetime,
        who: Identity | None,
        outcome: str,
        reasons: Sequence[Reason],
        *,
        route: str | None = "orders",
        method: str = "GET",
        path: str = "/api/orders/1",
        decided_by: str = "authorizer",
        elevation: ElevationRecord | None = None,
        source_ip: str = "203.0.113.7",
        user_agent: str = "curl/8.5.0",
    ) -> dict[str, Any]:
        """The authorizer's (or the proxy's) decision event."""
        record = DecisionRecord(
            outcome,  # type: ignore[arg-type]
            tuple(reasons),
            matched_rules=("r1",) if outcome == "allow" else (),
            policy_version=3,
            policy_checksum="sha256:" + "ab" * 32,
            decided_by=decided_by,
            elevation=elevation,
        )
        return self.add(
            build_event(
                "decision",
                _request(request_id, method, path, source_ip, user_agent),
                identity=who,
                decision=record,
                resource=ResourceRecord(route, "http://orders.internal" if route else None),
            ),
            moment,
        )

    def response(
        self,
        request_id: str,
        moment: datetime,
        who: Identity | None,
        *,
        status: int = 200,
        latency_ms: float = 25.0,
        bytes_in: int = 0,
        bytes_out: int = 100,
        route: str | None = "orders",
        method: str = "GET",
        path: str = "/api/orders/1",
        refused: Reason | None = None,
        elevation: ElevationRecord | None = None,
        aws: AwsRecord | None = None,
        source_ip: str = "203.0.113.7",
        user_agent: str = "curl/8.5.0",
    ) -> dict[str, Any]:
        """The proxy's response event: served (allow), or ``refused`` for that reason (deny)."""
        if refused is None:
            served_under = DecisionRecord(
                "allow", (), policy_version=3, decided_by="proxy", elevation=elevation
            )
        else:
            served_under = DecisionRecord("deny", (refused,), decided_by="proxy")
        return self.add(
            build_event(
                "response",
                _request(request_id, method, path, source_ip, user_agent),
                identity=who,
                decision=served_under,
                resource=ResourceRecord(route, "http://orders.internal" if route else None),
                response=ResponseRecord(status, bytes_in, bytes_out, latency_ms, latency_ms - 5),
                aws=aws,
            ),
            moment,
        )

    # --- whole requests ---

    def served(
        self,
        request_id: str,
        start: datetime,
        who: Identity,
        *,
        reasons: Sequence[Reason] = (Reason.ALLOW_RULE_MATCHED,),
        status: int = 200,
        latency_ms: int = 30,
        bytes_in: int = 0,
        bytes_out: int = 100,
        elevation: ElevationRecord | None = None,
        aws: AwsRecord | None = None,
        **where: Any,
    ) -> None:
        """An allowed request the proxy served: access log, decision, response."""
        self.gateway(
            request_id,
            start,
            status=status,
            subject=who.subject,
            latency_ms=latency_ms,
            bytes_out=bytes_out,
            **_only(where, "method", "path", "source_ip", "user_agent"),
        )
        self.decision(
            request_id, start + 5 * MS, who, "allow", reasons, elevation=elevation, **where
        )
        self.response(
            request_id,
            start + 20 * MS,
            who,
            status=status,
            latency_ms=latency_ms - 5,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            elevation=elevation,
            aws=aws,
            **where,
        )

    def denied(
        self,
        request_id: str,
        start: datetime,
        who: Identity,
        reasons: Sequence[Reason],
        **where: Any,
    ) -> None:
        """A request the authorizer denied (cache off): access log 403 and the decision."""
        self.gateway(
            request_id,
            start,
            status=403,
            subject=who.subject,
            response_type="ACCESS_DENIED",
            served=False,
            **_only(where, "method", "path", "source_ip", "user_agent"),
        )
        self.decision(request_id, start + 5 * MS, who, "deny", reasons, **where)


def _only(where: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {name: value for name, value in where.items() if name in names}


def _request(
    request_id: str, method: str, path: str, source_ip: str, user_agent: str
) -> RequestRecord:
    return RequestRecord(
        request_id=request_id,
        extended_request_id=f"ext-{request_id}",
        trace_id=f"Root=1-{request_id}",
        lambda_request_id=f"lambda-{request_id}",
        stage=STAGE,
        source_ip=source_ip,
        user_agent=user_agent,
        host=HOST,
        method=method,
        path=path,
        query=None,
    )


def run(
    name: str,
    params: Mapping[str, str],
    trail: Trail,
    cloudtrail: Iterable[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """The rows of named query ``name`` on ``trail``, each as {column: value}."""
    result = LocalEngine.from_records(trail.events, cloudtrail).run_named(name, params)
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


# ---------------------------------------------------------------- accesses_by_path


def accesses_trail() -> Trail:
    trail = Trail()
    # r1: exactly at the window start (inclusive), in partition hour 10.
    trail.served("r1", at("2026-03-10 10:00:00.000"), ALICE, path="/api/orders/1")
    # r2: the last millisecond of the window, in partition hour 11.
    trail.served("r2", at("2026-03-10 11:59:59.999"), ALICE, path="/api/orders/2")
    # r12: /api/orders/10 starts with "/api/orders/1" but is another path segment.
    trail.served("r12", at("2026-03-10 11:30:00.000"), ALICE, path="/api/orders/10")
    # r3: exactly at the window end (exclusive), in partition hour 12.
    trail.served("r3", at("2026-03-10 12:00:00.000"), ALICE, path="/api/orders/3")
    # r11: the day before, same hour: another dt partition.
    trail.served("r11", at("2026-03-09 10:30:00.000"), ALICE, path="/api/orders/11")
    # r4: starts 10 ms before the window; its decision and response fall inside
    # it, but the request is placed at its first event: not counted.
    trail.served("r4", at("2026-03-10 09:59:59.990"), BOB, path="/api/orders/4")
    # r5: the authorizer allowed, the proxy refused (token expired on a cached
    # answer): deny beats allow.
    r5 = at("2026-03-10 10:30:00.000")
    trail.gateway("r5", r5, status=401, subject="sub-bob", path="/api/orders/5")
    trail.decision(
        "r5", r5 + 5 * MS, BOB, "allow", [Reason.ALLOW_RULE_MATCHED], path="/api/orders/5"
    )
    trail.response(
        "r5", r5 + 20 * MS, BOB, status=401, path="/api/orders/5", route=None,
        refused=Reason.TOKEN_EXPIRED,
    )  # fmt: skip
    # r6: Carol (no email) denied by the authorizer.
    trail.denied(
        "r6", at("2026-03-10 11:00:00.000"), CAROL, [Reason.NO_MATCHING_RULE], path="/api/orders/6"
    )
    # r7: no token: API Gateway answered 401 alone (no principal, no route).
    trail.gateway(
        "r7", at("2026-03-10 10:45:00.000"), status=401, path="/api/orders/9",
        response_type="UNAUTHORIZED", served=False,
    )  # fmt: skip
    # r8: /apiary is not under /api.
    trail.served("r8", at("2026-03-10 10:50:00.000"), ALICE, path="/apiary/x", route="apiary")
    # r9: the prefix itself.
    trail.served("r9", at("2026-03-10 11:10:00.000"), BOB, path="/api", route="root")
    # r10: a cached deny API Gateway answered alone: only Bob's subject is known.
    trail.gateway(
        "r10", at("2026-03-10 11:20:00.000"), status=403, subject="sub-bob",
        path="/api/orders/3", response_type="ACCESS_DENIED", served=False,
    )  # fmt: skip
    # A grant event in the window is not an access.
    trail.add(
        build_admin_event("grant", stage=STAGE, details={"action": "refused"}, operator=None),
        at("2026-03-10 10:10:00"),
    )
    return trail


def access_row(subject: str | None, issuer: str | None, email: str | None, *counts: Any) -> dict:
    requests, allowed, denied, errors, gateway_only, first, last = counts
    return {
        "subject": subject,
        "issuer": issuer,
        "email": email,
        "requests": requests,
        "allowed": allowed,
        "denied": denied,
        "errors": errors,
        "gateway_only": gateway_only,
        "first_seen": ts(first),
        "last_seen": ts(last),
    }


def test_accesses_by_route_id() -> None:
    rows = run(
        "accesses_by_path", {**WINDOW, "route_id": "orders", "path_prefix": ""}, accesses_trail()
    )
    # Route "orders" in [10:00, 12:00): r1, r2, r12 (Alice), r5 (Bob, denied:
    # the route comes from the authorizer's decision), r6 (Carol). Not r3
    # (window end), r4 (started before), r11 (day before), r7/r10 (API
    # Gateway events carry no route).
    assert rows == [
        access_row("sub-alice", ISSUER, "alice@example.com", 3, 3, 0, 0, 0,
                   "2026-03-10 10:00:00", "2026-03-10 11:59:59.999"),
        access_row("sub-bob", ISSUER, "bob@example.com", 1, 0, 1, 0, 0,
                   "2026-03-10 10:30:00", "2026-03-10 10:30:00"),
        access_row("sub-carol", ISSUER, None, 1, 0, 1, 0, 0,
                   "2026-03-10 11:00:00", "2026-03-10 11:00:00"),
    ]  # fmt: skip


def test_accesses_by_path_prefix_include_requests_api_gateway_answered_alone() -> None:
    rows = run(
        "accesses_by_path", {**WINDOW, "route_id": "", "path_prefix": "/api"}, accesses_trail()
    )
    # Under /api: Bob's r5 (deny), r9 (/api itself, allow) and r10 (API Gateway
    # alone, found by his subject); Alice's r1, r2, r12; Carol's r6; r7 with no
    # principal at all. Not r8 (/apiary). Ties on count order by subject,
    # the anonymous row last.
    assert rows == [
        access_row("sub-alice", ISSUER, "alice@example.com", 3, 3, 0, 0, 0,
                   "2026-03-10 10:00:00", "2026-03-10 11:59:59.999"),
        access_row("sub-bob", ISSUER, "bob@example.com", 3, 1, 1, 0, 1,
                   "2026-03-10 10:30:00", "2026-03-10 11:20:00"),
        access_row("sub-carol", ISSUER, None, 1, 0, 1, 0, 0,
                   "2026-03-10 11:00:00", "2026-03-10 11:00:00"),
        access_row(None, None, None, 1, 0, 0, 0, 1,
                   "2026-03-10 10:45:00", "2026-03-10 10:45:00"),
    ]  # fmt: skip


def test_accesses_by_route_and_path_match_whole_segments() -> None:
    params = {**WINDOW, "route_id": "orders", "path_prefix": "/api/orders/1"}
    rows = run("accesses_by_path", params, accesses_trail())
    # /api/orders/1 is r1 only: /api/orders/10 (r12) is another segment.
    assert rows == [
        access_row("sub-alice", ISSUER, "alice@example.com", 1, 1, 0, 0, 0,
                   "2026-03-10 10:00:00", "2026-03-10 10:00:00"),
    ]  # fmt: skip


def test_accesses_of_an_unknown_route_are_none() -> None:
    params = {**WINDOW, "route_id": "nothing-here", "path_prefix": ""}
    assert run("accesses_by_path", params, accesses_trail()) == []


# ---------------------------------------------------------------- principal_activity

GRANT_APPROVER = f"{ISSUER}|sub-carol"


def a_grant(grant_id: str, who: Identity, requested: datetime, justification: str) -> Grant:
    """A pending grant of ``who`` on route orders for two days."""
    return Grant(
        id=grant_id,
        issuer=who.issuer,
        subject=who.subject,
        email=who.email,
        routes=("orders",),
        actions=frozenset({"GET"}),
        paths=(),
        duration_seconds=2 * 86400,
        justification=justification,
        status="pending",
        requested_at=requested.timestamp(),
    )


def grant_event(
    trail: Trail,
    action: str,
    grant: Grant,
    moment: datetime,
    actor: Identity | None,
    request_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A grant lifecycle event as the grant API, the authorizer or the sweeper writes it."""
    event = build_admin_event(
        "grant",
        stage=STAGE,
        details=grant_details(action, grant, **extra),
        operator=None,
        identity=actor,
    )
    if request_id is not None:  # the grant API records its own request
        event["request"] = {
            "id": request_id,
            "extended_id": None,
            "lambda_request_id": None,
            "trace_id": None,
            "decision_id": None,
        }
        event["source"] = {"ip": "198.51.100.4", "user_agent": "gatehouse-cli/0.1"}
    return trail.add(event, moment)


def activity_trail() -> Trail:
    trail = Trail()
    grant = a_grant("G1", ALICE, at("2026-03-10 10:15:00"), "INC-42: fix stuck orders")
    approved = grant.approved_by(GRANT_APPROVER, at("2026-03-10 10:30:00").timestamp())
    under_grant = ElevationRecord("G1", GRANT_APPROVER, "INC-42: fix stuck orders", False)
    # Alice, in the window: a served read, a denied write, a grant request, a
    # request under the grant and the grant's first use (the authorizer's event).
    trail.served("a1", at("2026-03-10 10:05:00"), ALICE, source_ip="10.0.0.1")
    trail.denied(
        "a2", at("2026-03-10 10:10:00"), ALICE, [Reason.DENY_RULE_MATCHED],
        method="POST", path="/api/orders",
    )  # fmt: skip
    grant_event(trail, "requested", grant, at("2026-03-10 10:15:00"), ALICE, request_id="g-req-1")
    # Carol approves: Carol did that, not Alice.
    grant_event(trail, "approved", approved, at("2026-03-10 10:30:00"), CAROL, request_id="g-req-2")
    trail.served(
        "a4", at("2026-03-10 10:40:00"), ALICE, reasons=[Reason.GRANT_MATCHED],
        elevation=under_grant,
    )  # fmt: skip
    grant_event(
        trail, "used", approved, at("2026-03-10 10:40:00.005"), ALICE, decision_id="a4-decision"
    )
    # Alice outside the window: a minute before it, and at its (exclusive) end.
    trail.served("a0", at("2026-03-10 09:59:00"), ALICE)
    trail.served("a9", at("2026-03-10 12:00:00"), ALICE)
    # Bob: a cached deny API Gateway answered alone (subject only), then a served read.
    trail.gateway(
        "b1", at("2026-03-10 10:20:00"), status=403, subject="sub-bob",
        response_type="ACCESS_DENIED", served=False,
    )  # fmt: skip
    trail.served("b2", at("2026-03-10 10:25:00"), BOB)
    # b3: the proxy answered 200, too late: API Gateway gave the client 504.
    # The status is what the client saw.
    b3 = at("2026-03-10 10:35:00")
    trail.gateway("b3", b3, status=504, subject="sub-bob", response_type="INTEGRATION_TIMEOUT")
    trail.decision("b3", b3 + 5 * MS, BOB, "allow", [Reason.ALLOW_RULE_MATCHED])
    trail.response("b3", b3 + 29 * 1000 * MS, BOB, status=200)
    return trail


def activity_row(moment: str, kind: str, request_id: str | None, action: str, **rest: Any) -> dict:
    row: dict[str, Any] = {
        "at": ts(moment),
        "kind": kind,
        "request_id": request_id,
        "action": action,
        "method": None,
        "host": None,
        "path": None,
        "route_id": None,
        "decision": None,
        "reasons": None,
        "status": None,
        "source_ip": "203.0.113.7",
        "user_agent": "curl/8.5.0",
        "grant_id": None,
        "break_glass": False,
    }
    row.update(rest)
    return row


ORDER_READ = {"method": "GET", "host": HOST, "path": "/api/orders/1", "route_id": "orders"}


def test_principal_activity_by_email_in_any_case() -> None:
    rows = run("principal_activity", {**WINDOW, "principal": "Alice@Example.COM"}, activity_trail())
    # Her requests and grant actions in [10:00, 12:00), in time order; not
    # a0 (09:59) nor a9 (12:00), not Carol's approval of her grant. The
    # "used" event is the authorizer's: it has no request of its own.
    assert rows == [
        activity_row("2026-03-10 10:05:00", "request", "a1", "read", **ORDER_READ,
                     decision="allow", reasons=["allow_rule_matched"], status=200,
                     source_ip="10.0.0.1"),
        activity_row("2026-03-10 10:10:00", "request", "a2", "write", method="POST", host=HOST,
                     path="/api/orders", route_id="orders", decision="deny",
                     reasons=["deny_rule_matched"], status=403),
        activity_row("2026-03-10 10:15:00", "grant", "g-req-1", "requested", grant_id="G1",
                     source_ip="198.51.100.4", user_agent="gatehouse-cli/0.1"),
        activity_row("2026-03-10 10:40:00", "request", "a4", "read", **ORDER_READ,
                     decision="allow", reasons=["grant_matched"], status=200, grant_id="G1"),
        activity_row("2026-03-10 10:40:00.005", "grant", None, "used", grant_id="G1",
                     source_ip=None, user_agent=None),
    ]  # fmt: skip


def test_principal_activity_by_subject_includes_what_api_gateway_answered_alone() -> None:
    rows = run("principal_activity", {**WINDOW, "principal": "sub-bob"}, activity_trail())
    # b1 names Bob only by subject (the access log's principalId): found.
    assert rows == [
        activity_row("2026-03-10 10:20:00", "request", "b1", "read", method="GET", host=HOST,
                     path="/api/orders/1", status=403),
        activity_row("2026-03-10 10:25:00", "request", "b2", "read", **ORDER_READ,
                     decision="allow", reasons=["allow_rule_matched"], status=200),
        activity_row("2026-03-10 10:35:00", "request", "b3", "read", **ORDER_READ,
                     decision="allow", reasons=["allow_rule_matched"], status=504),
    ]  # fmt: skip


def test_principal_activity_matches_subjects_exactly() -> None:
    # Subjects are case-sensitive, and an email is not a prefix match.
    for principal in ("SUB-BOB", "alice@example", "bob"):
        assert run("principal_activity", {**WINDOW, "principal": principal}, activity_trail()) == []


# ---------------------------------------------------------------- denies_with_reasons


def denies_trail() -> Trail:
    trail = Trail()
    # d1: with the authorizer cache on, the authorizer denies and lets the request
    # through; the proxy answers 403 and records the same reason (route unknown
    # to it). One request: counted once.
    d1 = at("2026-03-10 10:05:00")
    trail.gateway("d1", d1, status=403, subject="sub-alice")
    trail.decision("d1", d1 + 5 * MS, ALICE, "deny", [Reason.DENY_RULE_MATCHED])
    trail.response(
        "d1", d1 + 20 * MS, ALICE, status=403, route=None, refused=Reason.DENY_RULE_MATCHED
    )
    trail.denied("d2", at("2026-03-10 10:06:00"), ALICE, [Reason.DENY_RULE_MATCHED])
    # d3: one decision, two reasons: one row each.
    trail.denied("d3", at("2026-03-10 10:07:00"), ALICE, [Reason.MFA_REQUIRED, Reason.AUTH_TOO_OLD])
    # d4: allowed by the authorizer, refused by the proxy: deny beats allow,
    # and only the deny's reason counts.
    d4 = at("2026-03-10 10:30:00")
    trail.gateway("d4", d4, status=401, subject="sub-bob")
    trail.decision("d4", d4 + 5 * MS, BOB, "allow", [Reason.ALLOW_RULE_MATCHED])
    trail.response("d4", d4 + 20 * MS, BOB, status=401, route=None, refused=Reason.TOKEN_EXPIRED)
    # d5, d6: refused by API Gateway alone: no token; throttled (subject known).
    trail.gateway(
        "d5", at("2026-03-10 10:40:00"), status=401, response_type="UNAUTHORIZED", served=False
    )
    trail.gateway(
        "d6", at("2026-03-10 10:41:00"), status=429, subject="sub-carol",
        response_type="THROTTLED", served=False,
    )  # fmt: skip
    # Not denies: API Gateway's 500 (authorizer failure), an error decision, an allow.
    trail.gateway(
        "n1", at("2026-03-10 10:42:00"), status=500, response_type="AUTHORIZER_FAILURE",
        served=False,
    )  # fmt: skip
    trail.decision("n2", at("2026-03-10 10:43:00"), DAVE, "error", [Reason.POLICY_UNAVAILABLE])
    trail.served("n3", at("2026-03-10 10:44:00"), DAVE)
    # Outside: the millisecond before the window, and its end.
    trail.denied("o1", at("2026-03-10 09:59:59.999"), DAVE, [Reason.NO_MATCHING_RULE])
    trail.denied("o2", at("2026-03-10 12:00:00.000"), DAVE, [Reason.NO_MATCHING_RULE])
    return trail


def deny_row(reason: str, subject: str | None, email: str | None, route: str | None,
             requests: int, first: str, last: str) -> dict:  # fmt: skip
    return {
        "reason": reason,
        "subject": subject,
        "email": email,
        "route_id": route,
        "requests": requests,
        "first_seen": ts(first),
        "last_seen": ts(last),
    }


def test_denies_with_reasons() -> None:
    rows = run("denies_with_reasons", WINDOW, denies_trail())
    # Most requests first, then by reason (byte order: "gateway:T" < "gateway:U").
    assert rows == [
        deny_row("deny_rule_matched", "sub-alice", "alice@example.com", "orders", 2,
                 "2026-03-10 10:05:00", "2026-03-10 10:06:00"),
        deny_row("auth_too_old", "sub-alice", "alice@example.com", "orders", 1,
                 "2026-03-10 10:07:00", "2026-03-10 10:07:00"),
        deny_row("gateway:THROTTLED", "sub-carol", None, None, 1,
                 "2026-03-10 10:41:00", "2026-03-10 10:41:00"),
        deny_row("gateway:UNAUTHORIZED", None, None, None, 1,
                 "2026-03-10 10:40:00", "2026-03-10 10:40:00"),
        deny_row("mfa_required", "sub-alice", "alice@example.com", "orders", 1,
                 "2026-03-10 10:07:00", "2026-03-10 10:07:00"),
        deny_row("token_expired", "sub-bob", "bob@example.com", "orders", 1,
                 "2026-03-10 10:30:00", "2026-03-10 10:30:00"),
    ]  # fmt: skip


def test_no_denies_in_an_empty_window() -> None:
    params = {"from": "2026-03-11 00:00:00", "to": "2026-03-12 00:00:00"}
    assert run("denies_with_reasons", params, denies_trail()) == []


# ---------------------------------------------------------------- elevated_access


def elevated_trail() -> Trail:
    trail = Trail()
    # G1: Alice's, requested and approved the day before, first used then too,
    # revoked inside the window.
    g1 = a_grant("G1", ALICE, at("2026-03-09 08:00:00"), "INC-42: fix stuck orders")
    g1_approved = g1.approved_by(GRANT_APPROVER, at("2026-03-09 09:00:00").timestamp())
    grant_event(trail, "requested", g1, at("2026-03-09 08:00:00"), ALICE, request_id="g1-req")
    grant_event(trail, "approved", g1_approved, at("2026-03-09 09:00:00"), CAROL, "g1-ok")
    grant_event(trail, "used", g1_approved, at("2026-03-09 09:30:00"), ALICE, decision_id="x")
    # A refused attempt on G1 (Alice approving her own) is not part of its life.
    refused = build_admin_event(
        "grant",
        stage=STAGE,
        details={"action": "refused", "attempted": "approve", "grant_id": "G1", "status": 403,
                 "reason": "nobody approves or denies their own grant"},
        operator=None,
        identity=ALICE,
    )  # fmt: skip
    trail.add(refused, at("2026-03-10 10:50:00"))
    grant_event(
        trail, "revoked", g1_approved, at("2026-03-10 11:30:00"), CAROL, "g1-revoke",
        ended_at=utc_timestamp(at("2026-03-10 11:30:00").timestamp()),
    )  # fmt: skip
    # G2: Bob's, requested 2026-03-08 09:00, before the 2-day lookback
    # (which starts 2026-03-08 10:00): not found; approved at 11:00, inside it.
    # The approval's event repeats the requester, so requested_by is known.
    g2 = a_grant("G2", BOB, at("2026-03-08 09:00:00"), "quarterly export")
    g2_approved = g2.approved_by(GRANT_APPROVER, at("2026-03-08 11:00:00").timestamp())
    grant_event(trail, "requested", g2, at("2026-03-08 09:00:00"), BOB, request_id="g2-req")
    grant_event(trail, "approved", g2_approved, at("2026-03-08 11:00:00"), CAROL, "g2-ok")
    # Revoked 30 s after the window (inside the minute the query reads past
    # it for requests still running): not in the evidence of this window.
    grant_event(trail, "revoked", g2_approved, at("2026-03-10 12:00:30"), CAROL, "g2-revoke")
    on_g1 = ElevationRecord("G1", GRANT_APPROVER, "INC-42: fix stuck orders", False)
    on_g2 = ElevationRecord("G2", GRANT_APPROVER, "quarterly export", False)
    glass = ElevationRecord(None, None, "outage: pager 7", True)
    trail.served("e1", at("2026-03-10 10:15:00"), ALICE, reasons=[Reason.GRANT_MATCHED],
                 elevation=on_g1)  # fmt: skip
    trail.served("e2", at("2026-03-10 11:00:00"), ALICE, reasons=[Reason.GRANT_MATCHED],
                 elevation=on_g1)  # fmt: skip
    trail.served("e3", at("2026-03-10 10:30:00"), BOB, reasons=[Reason.GRANT_MATCHED],
                 elevation=on_g2, path="/api/orders/export")  # fmt: skip
    trail.served("e4", at("2026-03-10 10:45:00"), CAROL, reasons=[Reason.BREAK_GLASS],
                 elevation=glass, method="DELETE", path="/api/orders/7")  # fmt: skip
    # Not evidence: a standing-rule request, and elevated ones outside the window.
    trail.served("s1", at("2026-03-10 10:20:00"), ALICE)
    trail.served("e0", at("2026-03-10 09:59:59.999"), ALICE, elevation=on_g1)
    trail.served("e9", at("2026-03-10 12:00:00"), ALICE, elevation=on_g1)
    return trail


APPROVED_BY = f"{ISSUER}|sub-carol"
G1_LIFE = {
    "requested_by": "alice@example.com",
    "requested_at": ts("2026-03-09 08:00:00"),
    "approved_by": APPROVED_BY,
    "approved_at": ts("2026-03-09 09:00:00"),
    "expires_at": ts("2026-03-11 09:00:00"),  # approval + 2 days
    "first_used_at": ts("2026-03-09 09:30:00"),
    "ended_at": ts("2026-03-10 11:30:00"),
}
NO_LIFE = dict.fromkeys(G1_LIFE)


def elevated_row(moment: str, request_id: str, who: Identity, **rest: Any) -> dict:
    row: dict[str, Any] = {
        "at": ts(moment),
        "request_id": request_id,
        "subject": who.subject,
        "email": who.email,
        "method": "GET",
        "path": "/api/orders/1",
        "route_id": "orders",
        "decision": "allow",
        "status": 200,
    }
    row.update(rest)
    return row


def test_elevated_access_with_grant_lifecycles() -> None:
    rows = run("elevated_access", {**WINDOW, "lookback_days": "2"}, elevated_trail())
    g1 = {"break_glass": False, "grant_id": "G1", "justification": "INC-42: fix stuck orders"}
    assert rows == [
        elevated_row("2026-03-10 10:15:00", "e1", ALICE, **g1, **G1_LIFE),
        elevated_row("2026-03-10 10:30:00", "e3", BOB, path="/api/orders/export",
                     break_glass=False, grant_id="G2", justification="quarterly export",
                     **{**NO_LIFE, "requested_by": "bob@example.com",
                        "approved_by": APPROVED_BY,
                        "approved_at": ts("2026-03-08 11:00:00"),
                        "expires_at": ts("2026-03-10 11:00:00")}),
        # Break-glass: no grant, the justification the request carried.
        elevated_row("2026-03-10 10:45:00", "e4", CAROL, method="DELETE", path="/api/orders/7",
                     break_glass=True, grant_id=None, justification="outage: pager 7",
                     **NO_LIFE),
        elevated_row("2026-03-10 11:00:00", "e2", ALICE, **g1, **G1_LIFE),
    ]  # fmt: skip


def test_elevated_access_lookback_bounds_the_lifecycle_search() -> None:
    rows = run("elevated_access", {**WINDOW, "lookback_days": "0"}, elevated_trail())
    # With no lookback only G1's revocation (in the window) is found.
    assert [(row["request_id"], row["approved_at"], row["ended_at"]) for row in rows] == [
        ("e1", None, ts("2026-03-10 11:30:00")),
        ("e3", None, None),
        ("e4", None, None),
        ("e2", None, ts("2026-03-10 11:30:00")),
    ]


# ---------------------------------------------------------------- policy_changes


def policy_change(trail: Trail, moment: datetime, number: int, action: str,
                  before: int | None, after: int, summary: dict[str, Any]) -> None:  # fmt: skip
    """The event PolicyAdmin writes for activation ``number`` (chalicelib/policy/admin.py)."""
    details = {
        "action": action,
        "activation": number,
        "from_version": before,
        "from_checksum": None if before is None else f"sha256:{before:064d}",
        "to_version": after,
        "to_checksum": f"sha256:{after:064d}",
        "summary": summary,
        "archive": {"version": f"policy/versions/{after:08d}.json",
                    "activation": f"policy/activations/{number:08d}.json"},
    }  # fmt: skip
    operator = f"arn:aws:sts::{ACCOUNT}:assumed-role/admin/ops-{number}"
    event = build_admin_event("policy_change", stage=STAGE, details=details, operator=operator)
    trail.add(event, moment)


ADDED_ROUTE = {
    "routes": {"added": ["reports"], "removed": [], "changed": {}},
    "rules": {"added": ["reports-readers"], "removed": [], "changed": {"ops": ["groups"]}},
    "blocks_changed": ["grants"],
}
ROLLED_BACK = {
    "routes": {"added": [], "removed": ["reports"], "changed": {}},
    "rules": {"added": [], "removed": ["reports-readers"], "changed": {"ops": ["groups"]}},
    "blocks_changed": ["grants"],
}


def test_policy_changes() -> None:
    trail = Trail()
    policy_change(trail, at("2026-03-10 09:59:59.999"), 1, "apply", None, 1, {})
    policy_change(trail, at("2026-03-10 10:00:00.000"), 2, "apply", 1, 2, ADDED_ROUTE)
    policy_change(trail, at("2026-03-10 11:59:59.999"), 3, "rollback", 2, 1, ROLLED_BACK)
    policy_change(trail, at("2026-03-10 12:00:00.000"), 4, "apply", 1, 3, {})
    trail.served("r1", at("2026-03-10 10:30:00"), ALICE)  # not a policy change
    rows = run("policy_changes", WINDOW, trail)
    # Activations 2 and 3: the window's bounds are the first and last millisecond.
    # The summary is stored JSON; its text form is the SerDe's, so compare it parsed.
    for row in rows:
        row["summary"] = json.loads(row["summary"])
    assert rows == [
        {"at": ts("2026-03-10 10:00:00"), "action": "apply", "activation": 2,
         "from_version": 1, "from_checksum": f"sha256:{1:064d}",
         "to_version": 2, "to_checksum": f"sha256:{2:064d}",
         "operator": f"arn:aws:sts::{ACCOUNT}:assumed-role/admin/ops-2",
         "summary": ADDED_ROUTE, "event_id": trail.events[1]["event_id"]},
        {"at": ts("2026-03-10 11:59:59.999"), "action": "rollback", "activation": 3,
         "from_version": 2, "from_checksum": f"sha256:{2:064d}",
         "to_version": 1, "to_checksum": f"sha256:{1:064d}",
         "operator": f"arn:aws:sts::{ACCOUNT}:assumed-role/admin/ops-3",
         "summary": ROLLED_BACK, "event_id": trail.events[2]["event_id"]},
    ]  # fmt: skip


# ---------------------------------------------------------------- route_usage


def usage_trail() -> Trail:
    trail = Trail()
    start = at("2026-03-10 10:00:00")
    # Route orders: 40 served requests, one every minute from 10:00. Latency
    # (API Gateway's) is 10 ms for the first 30 and 100 ms for the last 10, so
    # that every percentile rank lands among equal values: approx_percentile is
    # then exact (p50 = 10, p95 = 100), whatever the digest interpolates.
    # Statuses: 29 x 200 and one 301 among the fast ones; 8 x 200, 2 x 504
    # among the slow ones.
    for n in range(40):
        status = 301 if n == 7 else 504 if n in (35, 36) else 200
        trail.served(
            f"o{n}", start + timedelta(minutes=n), ALICE, status=status,
            latency_ms=10 if n < 30 else 100, bytes_in=10, bytes_out=100,
        )  # fmt: skip
    # One denied by the authorizer: API Gateway's 403 (7 ms, 100 bytes), no proxy response.
    trail.denied("o-denied", at("2026-03-10 11:00:00"), BOB, [Reason.NO_MATCHING_RULE])
    # Route reports: one request, 250 ms.
    trail.served("p1", at("2026-03-10 11:10:00"), ALICE, latency_ms=250, bytes_in=5,
                 bytes_out=2048, route="reports", path="/reports/q1")  # fmt: skip
    # Route exports: the proxy's events only (its access-log line not
    # delivered): latency and bytes out are the proxy's.
    trail.decision("x1", at("2026-03-10 11:20:00"), ALICE, "allow", [Reason.ALLOW_RULE_MATCHED],
                   route="exports", path="/exports/1")  # fmt: skip
    trail.response("x1", at("2026-03-10 11:20:00.020"), ALICE, status=200, latency_ms=40.0,
                   bytes_in=3, bytes_out=7, route="exports", path="/exports/1")  # fmt: skip
    # No route: three 401s API Gateway answered alone, and an authorizer
    # error (policy unavailable) that API Gateway answered 500.
    for n in range(3):
        trail.gateway(f"u{n}", at("2026-03-10 10:50:00") + timedelta(seconds=n), status=401,
                      latency_ms=2, bytes_out=30, response_type="UNAUTHORIZED",
                      served=False)  # fmt: skip
    trail.gateway("err", at("2026-03-10 10:55:00"), status=500, subject="sub-dave",
                  latency_ms=2, bytes_out=30, response_type="AUTHORIZER_FAILURE",
                  served=False)  # fmt: skip
    trail.decision("err", at("2026-03-10 10:55:00.005"), DAVE, "error",
                   [Reason.POLICY_UNAVAILABLE], route=None)  # fmt: skip
    # Outside the window, with latencies that would show in any percentile.
    trail.served("late", at("2026-03-10 12:00:00"), ALICE, latency_ms=9999)
    trail.served("early", at("2026-03-10 09:59:59.999"), ALICE, latency_ms=9999)
    return trail


def usage_row(route: str | None, *values: Any) -> dict:
    columns = ("requests", "allowed", "denied", "errors", "gateway_only", "status_2xx",
               "status_3xx", "status_4xx", "status_5xx", "latency_p50_ms", "latency_p95_ms",
               "bytes_in", "bytes_out")  # fmt: skip
    return {"host": HOST, "route_id": route, **dict(zip(columns, values, strict=True))}


def test_route_usage() -> None:
    rows = run("route_usage", WINDOW, usage_trail())
    assert rows == [
        # 40 served + 1 denied; 37 x 2xx, 1 x 3xx, the 403, 2 x 504; latencies
        # 7 (the 403), 30 x 10, 10 x 100; 40 x 10 bytes in; 41 x 100 bytes out.
        usage_row("orders", 41, 40, 1, 0, 0, 37, 1, 1, 2, 10.0, 100.0, 400, 4100),
        usage_row(None, 4, 0, 0, 1, 3, 0, 0, 3, 1, 2.0, 2.0, 0, 120),
        usage_row("exports", 1, 1, 0, 0, 0, 1, 0, 0, 0, 40.0, 40.0, 3, 7),
        usage_row("reports", 1, 1, 0, 0, 0, 1, 0, 0, 0, 250.0, 250.0, 5, 2048),
    ]


# ---------------------------------------------------------------- new_sources


def sources_trail() -> Trail:
    trail = Trail()
    # The window is [2026-03-10 10:00, 12:00); 7 days of lookback start at
    # 2026-03-03 10:00:00.000 (inclusive).
    trail.served("h1", at("2026-03-05 09:00:00"), ALICE, source_ip="10.0.0.1")
    # Just outside the lookback: its last event (the response, 20 ms after
    # the access log) is at 09:59:59.999, so 10.0.0.9 is not known history.
    trail.served("h2", at("2026-03-03 09:59:59.979"), ALICE, source_ip="10.0.0.9")
    # Exactly at the lookback's start: curl/7.0 is known.
    trail.served("h3", at("2026-03-03 10:00:00.000"), ALICE, source_ip="10.0.0.1",
                 user_agent="curl/7.0")  # fmt: skip
    trail.served("w1", at("2026-03-10 10:05:00"), ALICE, source_ip="10.0.0.1")
    trail.served("w2", at("2026-03-10 10:30:00"), ALICE, source_ip="10.0.0.2")
    trail.served("w3", at("2026-03-10 11:00:00"), ALICE, source_ip="10.0.0.2")
    trail.served("w4", at("2026-03-10 10:45:00"), ALICE, source_ip="10.0.0.9",
                 user_agent="curl/7.0")  # fmt: skip
    # At the window's end: not in it.
    trail.served("w5", at("2026-03-10 12:00:00"), ALICE, source_ip="10.0.0.77")
    # Bob is new altogether.
    trail.served("w6", at("2026-03-10 11:15:00"), BOB, source_ip="203.0.113.50",
                 user_agent="Mozilla/5.0")  # fmt: skip
    # Carol's history is API Gateway's log alone (subject only): still hers.
    trail.gateway("h4", at("2026-03-08 12:00:00"), status=403, subject="sub-carol",
                  source_ip="192.0.2.1", served=False)  # fmt: skip
    trail.served("w7", at("2026-03-10 10:10:00"), CAROL, source_ip="192.0.2.1")
    # Dave, last seen the evening before (his last event 23:59:59.020), changed
    # his client: 10 h later is 0 whole days (Athena truncates), although a day
    # boundary lies between (DuckDB's own date_diff would say 1).
    trail.served("h5", at("2026-03-09 23:59:59.000"), DAVE, source_ip="198.51.100.20")
    trail.served("w8", at("2026-03-10 10:20:00"), DAVE, source_ip="198.51.100.20",
                 user_agent="python-requests/2.32")  # fmt: skip
    # No principal: nobody's source.
    trail.gateway("w9", at("2026-03-10 10:25:00"), status=401, source_ip="198.51.100.99",
                  response_type="UNAUTHORIZED", served=False)  # fmt: skip
    return trail


def source_row(who: Identity, kind: str, value: str, first: str, last: str, requests: int,
               days_since_seen: int | None) -> dict:  # fmt: skip
    return {
        "subject": who.subject,
        "email": who.email,
        "kind": kind,
        "value": value,
        "first_seen": ts(first),
        "last_seen": ts(last),
        "requests": requests,
        "principal_is_new": days_since_seen is None,
        "days_since_principal_seen": days_since_seen,
    }


def test_new_sources() -> None:
    rows = run("new_sources", {**WINDOW, "lookback_days": "7"}, sources_trail())
    # Each request's events span 20 ms (access log, decision, response): last_seen
    # is its response. Ordered by subject, kind, first_seen. Alice was last seen
    # 2026-03-05 09:00:00.020 (h1): 5 days and an hour or so before. Bob is new.
    assert rows == [
        source_row(ALICE, "source_ip", "10.0.0.2",
                   "2026-03-10 10:30:00", "2026-03-10 11:00:00.020", 2, 5),
        source_row(ALICE, "source_ip", "10.0.0.9",
                   "2026-03-10 10:45:00", "2026-03-10 10:45:00.020", 1, 5),
        source_row(BOB, "source_ip", "203.0.113.50",
                   "2026-03-10 11:15:00", "2026-03-10 11:15:00.020", 1, None),
        source_row(BOB, "user_agent", "Mozilla/5.0",
                   "2026-03-10 11:15:00", "2026-03-10 11:15:00.020", 1, None),
        source_row(DAVE, "user_agent", "python-requests/2.32",
                   "2026-03-10 10:20:00", "2026-03-10 10:20:00.020", 1, 0),
    ]  # fmt: skip


def test_new_sources_without_lookback_everything_is_new() -> None:
    rows = run("new_sources", {**WINDOW, "lookback_days": "0"}, sources_trail())
    assert {(row["subject"], row["value"]) for row in rows if row["kind"] == "source_ip"} == {
        ("sub-alice", "10.0.0.1"),
        ("sub-alice", "10.0.0.2"),
        ("sub-alice", "10.0.0.9"),
        ("sub-bob", "203.0.113.50"),
        ("sub-carol", "192.0.2.1"),
        ("sub-dave", "198.51.100.20"),
    }
    assert all(row["principal_is_new"] for row in rows)


# ---------------------------------------------------------------- cloudtrail_correlation


def role_session(who: Identity, key: str, opened_by: str, *, recorded_identity: bool = True
                 ) -> IssuedSession:  # fmt: skip
    """A role session of ``who`` as the local STS issued it (CloudTrail's view)."""
    return IssuedSession(
        access_key_id=key,
        secret_access_key="not-used",
        session_token="not-used",
        role_arn=ROLE_ARN,
        assumed_role_id=f"AROAORDERSREADER:gh-{opened_by}",
        assumed_role_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/orders-reader/gh-{opened_by}",
        session_name=f"gh-{opened_by}",
        source_identity=who.email if recorded_identity else None,
        created=at("2026-03-10 10:00:00"),
        expires=at("2026-03-10 10:15:00"),
    )


def aws_call(session: IssuedSession, moment: datetime, user_agent: str, *,
             error: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The CloudTrail record of one signed call with ``session``."""
    record = upstream_call_record(
        session, service="execute-api", region="eu-west-1", event_name="Invoke",
        method="GET", path="/orders", source_ip="198.51.100.1", user_agent=user_agent,
        request_id=f"aws-{moment:%H%M%S}", now=moment,
    )  # fmt: skip
    if error:
        record["errorCode"], record["errorMessage"] = error, "denied"
    return record


def aws_record(session: IssuedSession | None, who: Identity) -> AwsRecord:
    """The ``aws`` section of a request (session fields None: the role was refused)."""
    return AwsRecord(
        ROLE_ARN, "eu-west-1", "execute-api",
        session_name=session.session_name if session else None,
        source_identity=who.email if session else None,
        access_key_id=session.access_key_id if session else None,
    )  # fmt: skip


def correlation_data() -> tuple[Trail, list[dict[str, Any]]]:
    alice = role_session(ALICE, "ASIAALICE0000000001", "c1")
    bob = role_session(BOB, "ASIABOB000000000001", "c3", recorded_identity=False)
    other = role_session(ALICE, "ASIAOTHER0000000001", "zz")
    trail = Trail()
    aws_route = {"route": "orders-aws", "path": "/aws/orders"}
    trail.served("c1", at("2026-03-10 10:05:00"), ALICE, aws=aws_record(alice, ALICE), **aws_route)
    # c2 reuses Alice's session; its client sent "gatehouse/c1" itself: only
    # the last mark (the proxy's) counts, so the record is c2's, not c1's.
    trail.served("c2", at("2026-03-10 10:06:00"), ALICE, aws=aws_record(alice, ALICE), **aws_route)
    trail.served("c3", at("2026-03-10 10:07:00"), BOB, aws=aws_record(bob, BOB), **aws_route)
    # c4: the role could not be assumed: no session, no AWS action.
    trail.served("c4", at("2026-03-10 10:08:00"), ALICE, status=503, aws=aws_record(None, ALICE),
                 **aws_route)  # fmt: skip
    # c5: starts in the window's last second; its AWS call lands after the window.
    trail.served("c5", at("2026-03-10 11:59:59"), ALICE, aws=aws_record(alice, ALICE), **aws_route)
    # c6: at the window's end; a request without an AWS upstream.
    trail.served("c6", at("2026-03-10 12:00:00"), ALICE, aws=aws_record(alice, ALICE), **aws_route)
    trail.served("plain", at("2026-03-10 10:09:00"), ALICE)
    cloudtrail = [
        aws_call(alice, at("2026-03-10 10:05:01"), "curl/8.5.0 gatehouse/c1"),
        aws_call(alice, at("2026-03-10 10:05:02"), "curl/8.5.0 gatehouse/c1"),
        aws_call(alice, at("2026-03-10 10:06:01"), "x gatehouse/c1 gatehouse/c2"),
        aws_call(bob, at("2026-03-10 10:07:01"), "gatehouse/c3", error="AccessDenied"),
        aws_call(alice, at("2026-03-10 12:00:30"), "gatehouse/c5"),
        aws_call(alice, at("2026-03-10 12:00:01"), "gatehouse/c6"),
        # Another session claiming c1: not c1's session, not c1's action.
        aws_call(other, at("2026-03-10 10:05:03"), "gatehouse/c1"),
        # The function's own call (no mark): no request caused it.
        aws_call(alice, at("2026-03-10 10:05:04"), "Boto3/1.44.8"),
    ]
    return trail, cloudtrail


def correlation_row(moment: str, request_id: str, who: Identity, session: str | None,
                    key: str | None, aws_at: str | None, **trail: Any) -> dict:  # fmt: skip
    row: dict[str, Any] = {
        "at": ts(moment),
        "request_id": request_id,
        "subject": who.subject,
        "email": who.email,
        "method": "GET",
        "path": "/aws/orders",
        "route_id": "orders-aws",
        "role_arn": ROLE_ARN,
        "session_name": session,
        "source_identity": who.email if session else None,
        "access_key_id": key,
        "aws_at": ts(aws_at) if aws_at else None,
        "aws_event_source": "execute-api.amazonaws.com" if aws_at else None,
        "aws_event_name": "Invoke" if aws_at else None,
        "aws_region": "eu-west-1" if aws_at else None,
        "aws_request_path": "/orders" if aws_at else None,
        "aws_error_code": None,
        "aws_request_id": f"aws-{ts(aws_at):%H%M%S}" if aws_at else None,
        "aws_event_id": None,
        "source_identity_matches": True if aws_at else None,
    }
    row.update(trail)
    return row


def test_cloudtrail_correlation() -> None:
    trail, cloudtrail = correlation_data()
    rows = run("cloudtrail_correlation", WINDOW, trail, cloudtrail)
    for row in rows:  # event ids are random UUIDs: checked for presence only
        assert (row["aws_event_id"] is None) == (row["aws_at"] is None)
        row["aws_event_id"] = None
    alice_key, bob_key = "ASIAALICE0000000001", "ASIABOB000000000001"
    assert rows == [
        correlation_row("2026-03-10 10:05:00", "c1", ALICE, "gh-c1", alice_key,
                        "2026-03-10 10:05:01"),
        correlation_row("2026-03-10 10:05:00", "c1", ALICE, "gh-c1", alice_key,
                        "2026-03-10 10:05:02"),
        correlation_row("2026-03-10 10:06:00", "c2", ALICE, "gh-c1", alice_key,
                        "2026-03-10 10:06:01"),
        # Bob's record has no sourceIdentity (as moto leaves it): unknown, not False.
        correlation_row("2026-03-10 10:07:00", "c3", BOB, "gh-c3", bob_key,
                        "2026-03-10 10:07:01", aws_error_code="AccessDenied",
                        source_identity_matches=None),
        correlation_row("2026-03-10 10:08:00", "c4", ALICE, None, None, None),
        correlation_row("2026-03-10 11:59:59", "c5", ALICE, "gh-c1", alice_key,
                        "2026-03-10 12:00:30"),
    ]  # fmt: skip


# ---------------------------------------------------------------- session_story

# Alice signed in twice, from two browsers: sessions bs-A and bs-B.
ALICE_A = dataclasses.replace(ALICE, browser_session_id="bs-A")
ALICE_B = dataclasses.replace(ALICE, browser_session_id="bs-B")
OPERATOR = f"arn:aws:iam::{ACCOUNT}:user/ops"


def session_event(
    trail: Trail,
    moment: datetime,
    section: SessionSection,
    who: Identity | None = None,
    operator: str | None = None,
) -> dict[str, Any]:
    """A session event as the sign-in handler, the session check or an operator writes it."""
    return trail.add(
        build_session_event(section, stage=STAGE, identity=who, operator=operator), moment
    )


def session_trail() -> Trail:
    trail = Trail()
    # Events are placed at their own time: a decision at 09:59:59.999 is before the window.
    trail.decision(
        "p0", at("2026-03-10 09:59:59.999"), ALICE_A, "allow", [Reason.ALLOW_RULE_MATCHED]
    )
    session_event(
        trail,
        at("2026-03-10 10:00:00"),
        SessionSection("signed_in", "bs-A", "okta", expires_at=1_773_165_600),
        ALICE_A,
    )
    # A sign-in that failed before any session existed: no session id, not bs-A's.
    session_event(
        trail,
        at("2026-03-10 10:01:00"),
        SessionSection("sign_in_failed", None, "okta", Reason.LOGIN_STATE_MISMATCH),
    )
    # bs-A: a served read (its access-log line names no session), then a denied write.
    trail.served("a1", at("2026-03-10 10:05:00"), ALICE_A)
    trail.denied(
        "a2", at("2026-03-10 10:10:00"), ALICE_A, [Reason.DENY_RULE_MATCHED],
        method="POST", path="/api/orders",
    )  # fmt: skip
    # Alice with a bearer token, meanwhile: no browser session.
    trail.served("t1", at("2026-03-10 10:15:00"), ALICE)
    # Her second browser: another session.
    session_event(
        trail, at("2026-03-10 10:20:00"), SessionSection("signed_in", "bs-B", "okta"), ALICE_B
    )
    trail.served("b1", at("2026-03-10 10:25:00"), ALICE_B)
    # bs-A: a decision and the session's refresh in the same millisecond (ledger order).
    trail.decision("a3", at("2026-03-10 10:30:00"), ALICE_A, "allow", [Reason.ALLOW_RULE_MATCHED])
    session_event(
        trail, at("2026-03-10 10:30:00"), SessionSection("refreshed", "bs-A", "okta"), ALICE_A
    )
    # An operator revokes bs-A; the cookie's next request is refused.
    session_event(
        trail,
        at("2026-03-10 10:50:00"),
        SessionSection("revoked", "bs-A", "okta", revoked_by="operator", detail="offboarding"),
        operator=OPERATOR,
    )
    trail.decision(
        "a4", at("2026-03-10 10:51:00"), ALICE_A, "deny", [Reason.SESSION_REVOKED], route=None
    )
    # At the window's (exclusive) end: the IdP's logout of bs-A.
    session_event(
        trail,
        at("2026-03-10 12:00:00"),
        SessionSection("idp_logged_out", "bs-A", "okta", revoked_by="idp"),
    )
    return trail


def story_row(moment: str, event_type: str, action: str, reason: str | None, **rest: Any) -> dict:
    row = {
        "at": ts(moment),
        "event_type": event_type,
        "action": action,
        "reason": reason,
        "method": None,
        "path": None,
        "status": None,
        "route_id": None,
        "request_id": None,
        "principal": None,
        "idp": None,
        "revoked_by": None,
        "operator": None,
        "source_ip": None,
    }
    row.update(rest)
    return row


def request_row(
    moment: str, event_type: str, outcome: str, reasons: str, request_id: str, **rest: Any
) -> dict:
    where = {
        "method": "GET",
        "path": "/api/orders/1",
        "route_id": "orders",
        "request_id": request_id,
        "principal": "alice@example.com",
        "source_ip": "203.0.113.7",
    }
    return story_row(moment, event_type, outcome, reasons, **(where | rest))


def test_session_story_is_one_sessions_events_oldest_first() -> None:
    rows = run("session_story", {**WINDOW, "session_id": "bs-A"}, session_trail())
    for row in rows:  # event ids are random UUIDs: checked for presence only
        assert row.pop("event_id")
    assert rows == [
        story_row("2026-03-10 10:00:00", "session", "signed_in", None, idp="okta",
                  principal="alice@example.com"),
        request_row("2026-03-10 10:05:00.005", "decision", "allow", "allow_rule_matched", "a1"),
        request_row("2026-03-10 10:05:00.020", "response", "allow", "", "a1", status=200),
        request_row("2026-03-10 10:10:00.005", "decision", "deny", "deny_rule_matched", "a2",
                    method="POST", path="/api/orders"),
        # Same millisecond: the decision was stored first.
        request_row("2026-03-10 10:30:00", "decision", "allow", "allow_rule_matched", "a3"),
        story_row("2026-03-10 10:30:00", "session", "refreshed", None, idp="okta",
                  principal="alice@example.com"),
        story_row("2026-03-10 10:50:00", "session", "revoked", None, idp="okta",
                  revoked_by="operator", operator=OPERATOR),
        request_row("2026-03-10 10:51:00", "decision", "deny", "session_revoked", "a4",
                    route_id=None),
    ]  # fmt: skip


def test_session_story_of_another_session_or_none_at_all() -> None:
    trail = session_trail()
    other = run("session_story", {**WINDOW, "session_id": "bs-B"}, trail)
    assert [(r["event_type"], r["action"], r["request_id"]) for r in other] == [
        ("session", "signed_in", None),
        ("decision", "allow", "b1"),
        ("response", "allow", "b1"),
    ]
    # The failed sign-in names no session: no id, however spelled, finds it.
    for session_id in ("", "None", "null"):
        assert run("session_story", {**WINDOW, "session_id": session_id}, trail) == []
    late = {"from": "2026-03-10 11:00:00", "to": "2026-03-10 13:00:00", "session_id": "bs-A"}
    assert [(r["event_type"], r["action"]) for r in run("session_story", late, trail)] == [
        ("session", "idp_logged_out")
    ]


def test_a_session_id_is_a_value_never_sql() -> None:
    for session_id in ("bs-A' OR '1'='1", "bs-A'; DROP TABLE audit_events; --", "bs-%"):
        assert run("session_story", {**WINDOW, "session_id": session_id}, session_trail()) == []


# ---------------------------------------------------------------- events_by_ids


def test_events_by_ids_is_exactly_the_named_events_of_the_window_in_ledger_order() -> None:
    trail = Trail()
    denied = [
        trail.decision(
            f"d{n}", at(f"2026-03-10 10:00:0{n}"), ALICE, "deny", [Reason.NO_MATCHING_RULE]
        )
        for n in range(4)
    ]
    # Another event in the window, not named; a named one after the window.
    trail.decision("x", at("2026-03-10 10:00:05"), BOB, "deny", [Reason.NO_MATCHING_RULE])
    late = trail.decision("l", at("2026-03-10 12:00:00"), ALICE, "deny", [Reason.NO_MATCHING_RULE])
    # An id that is a prefix of a named one must not match it.
    named = [denied[2], denied[0], denied[3], late]
    ids = ",".join(event["event_id"] for event in named) + "," + denied[1]["event_id"][:-1]
    rows = run("events_by_ids", {**WINDOW, "ids": ids}, trail)
    assert [row["event_id"] for row in rows] == [denied[n]["event_id"] for n in (0, 2, 3)]
    assert [row["sequence"] for row in rows] == [0, 2, 3]
    first = rows[0]
    assert (first["event_type"], first["subject"], first["outcome"]) == (
        "decision",
        "sub-alice",
        "deny",
    )
    assert (first["reasons"], first["source_ip"], first["path"]) == (
        "no_matching_rule",
        "203.0.113.7",
        "/api/orders/1",
    )
    assert run("events_by_ids", {**WINDOW, "ids": ""}, trail) == []


# ---------------------------------------------------------------- every query, its parameters

TESTED = {
    "accesses_by_path",
    "principal_activity",
    "denies_with_reasons",
    "elevated_access",
    "policy_changes",
    "route_usage",
    "new_sources",
    "cloudtrail_correlation",
    "session_story",
    "events_by_ids",
}


def test_every_named_query_has_a_reference_test_here() -> None:
    assert {query.name for query in named_queries()} == TESTED


@pytest.mark.parametrize("name", sorted(TESTED))
def test_every_query_takes_a_window(name: str) -> None:
    params = {param.name: param.type for param in load_named_query(name).params}
    assert params["from"] == "timestamp"
    assert params["to"] == "timestamp"


def good_params(name: str) -> dict[str, str]:
    values = {"varchar": "x", "timestamp": FROM, "integer": "1", "bigint": "1"}
    params = {param.name: values[param.type] for param in load_named_query(name).params}
    return {**params, **WINDOW}


@pytest.mark.parametrize("name", sorted(TESTED))
def test_a_missing_parameter_is_refused(name: str) -> None:
    engine = LocalEngine.from_records(Trail().events)
    for missing in good_params(name):
        params = {key: value for key, value in good_params(name).items() if key != missing}
        with pytest.raises(QueryError, match=missing):
            engine.run_named(name, params)


@pytest.mark.parametrize("name", sorted(TESTED))
def test_an_unknown_parameter_is_refused(name: str) -> None:
    engine = LocalEngine.from_records(Trail().events)
    with pytest.raises(QueryError, match="principle"):
        engine.run_named(name, {**good_params(name), "principle": "alice@example.com"})


@pytest.mark.parametrize(
    ("name", "param", "value"),
    [
        ("policy_changes", "from", "yesterday"),
        ("policy_changes", "to", "2026-13-01 00:00:00"),
        ("route_usage", "from", "2026-03-10 10:00:00'; DROP TABLE audit_events; --"),
        ("new_sources", "lookback_days", "seven"),
        ("new_sources", "lookback_days", "1.5"),
        ("elevated_access", "lookback_days", "2 OR 1=1"),
    ],
)
def test_an_ill_typed_parameter_is_refused(name: str, param: str, value: str) -> None:
    engine = LocalEngine.from_records(Trail().events)
    with pytest.raises(QueryError, match=param):
        engine.run_named(name, {**good_params(name), param: value})


def test_a_varchar_parameter_is_a_value_never_sql() -> None:
    # Quotes in a value are data: no principal has this subject, nothing breaks.
    principal = "x' OR '1'='1"
    assert run("principal_activity", {**WINDOW, "principal": principal}, activity_trail()) == []

"""Conditions, claims, break-glass and ambiguous paths through the real handlers.

The authorizer and the proxy run as Lambda handlers on API Gateway events;
tokens are signed with real keys, the policy is read from DynamoDB (moto),
audit events are read back from the SQS queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import app
from gatehouse.dev.lambda_context import LambdaContext
from tests.functional.conftest import policy_document, queued_events
from tests.functional.test_authorizer import authorizer_event, rebuild_container
from tests.functional.test_proxy import (
    API,
    REQUEST_ID,
    as_gateway_context,
    authorize,
    invoke,
    proxy_event,
    set_header,
)
from tests.helpers import FakeIdp, claims, make_token

if TYPE_CHECKING:
    from chalicelib.container import Container
    from gatehouse.dev.backend import DemoBackend
    from gatehouse.dev.bootstrap import Resources

JUSTIFICATION = "INC-4711: checkout is down, need the admin console"


def publish(container: Container, upstream: str, *rules: dict[str, Any], **blocks: Any) -> None:
    """Activate the conftest policy plus ``rules`` and top-level ``blocks``."""
    document = policy_document(upstream)
    document["rules"].extend(rules)
    document.update(blocks)
    container.policy_store.publish(document, actor="test")


def rule(rule_id: str, effect: str = "allow", **fields: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "effect": effect,
        "routes": ["demo"],
        "actions": fields.pop("actions", ["GET"]),
        "paths": fields.pop("paths", ["/admin/**"]),
        **fields,
    }


def decide(token: str, *, path: str = "/admin/console", **headers: str) -> dict[str, Any]:
    """The authorizer's answer for GET ``path`` (raises Unauthorized/AuthorizerFailure)."""
    event = authorizer_event([f"Bearer {token}"], path=path)
    for name, value in headers.items():
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    answer: dict[str, Any] = app.gatehouse_authorizer(
        event, LambdaContext(aws_request_id="lambda-auth")
    )
    return answer


def effect(answer: dict[str, Any]) -> str:
    statements = answer["policyDocument"]["Statement"]
    assert len(statements) == 1
    return str(statements[0]["Effect"])


def decisions(aws: Resources) -> list[dict[str, Any]]:
    return [event for event in queued_events(aws) if event["event_type"] == "decision"]


# --- conditions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amr", "expected", "reasons"),
    [
        (["pwd"], "Deny", ["mfa_required"]),
        (["pwd", "otp"], "Allow", ["allow_rule_matched"]),
        (["pwd", "mfa"], "Allow", ["allow_rule_matched"]),
        (None, "Deny", ["mfa_required"]),
    ],
    ids=["password only", "password and otp", "mfa", "no amr"],
)
def test_mfa_condition_is_decided_from_the_amr_claim(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    rsa_key: Any,
    amr: list[str] | None,
    expected: str,
    reasons: list[str],
) -> None:
    publish(
        stage,
        backend.url,
        rule("admin-mfa", subjects={"groups": ["engineering"]}, when={"mfa": True}),
    )
    queued_events(aws)
    token = make_token(rsa_key, "RS256", "rsa-1", claims(amr=amr))

    assert effect(decide(token)) == expected

    [event] = decisions(aws)
    assert event["decision"]["reasons"] == reasons
    assert event["decision"]["matched_rules"] == ["admin-mfa"]


@pytest.mark.parametrize(
    ("cidrs", "expected", "reasons"),
    [
        (["203.0.113.0/24"], "Allow", ["allow_rule_matched"]),
        (["::ffff:203.0.113.0/120"], "Allow", ["allow_rule_matched"]),
        (["10.0.0.0/8", "2001:db8::/32"], "Deny", ["source_not_allowed"]),
    ],
    ids=["inside", "inside, written IPv4-mapped", "outside"],
)
def test_source_cidrs_are_matched_against_the_address_api_gateway_saw(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    rsa_key: Any,
    cidrs: list[str],
    expected: str,
    reasons: list[str],
) -> None:
    # The event fixture's requestContext.identity.sourceIp is 203.0.113.7.
    publish(stage, backend.url, rule("office", when={"source_cidrs": cidrs}))
    queued_events(aws)
    token = make_token(rsa_key, "RS256", "rsa-1")

    assert effect(decide(token, **{"X-Forwarded-For": "10.1.1.1"})) == expected

    [event] = decisions(aws)
    assert event["decision"]["reasons"] == reasons
    assert event["source"]["ip"] == "203.0.113.7"


def test_an_allow_with_an_unknowable_condition_is_refused(
    stage: Container, aws: Resources, backend: DemoBackend, rsa_key: Any
) -> None:
    # No auth_time in the token: "a recent login" cannot be shown, so the allow fails.
    publish(
        stage,
        backend.url,
        rule("recent-logins", subjects={"groups": ["engineering"]}, when={"max_auth_age": 600}),
    )
    queued_events(aws)
    token = make_token(rsa_key, "RS256", "rsa-1", claims(auth_time=None))

    assert effect(decide(token)) == "Deny"

    [event] = decisions(aws)
    assert event["decision"]["reasons"] == ["auth_too_old"]
    assert event["decision"]["matched_rules"] == ["recent-logins"]


# --- claims ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("department", "expected"),
    [("security", "Allow"), (["it", "security"], "Allow"), ("sales", "Deny"), (None, "Deny")],
    ids=["equal", "member of a list claim", "different", "absent"],
)
def test_claims_subjects_match_equality_and_membership(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    rsa_key: Any,
    department: Any,
    expected: str,
) -> None:
    publish(
        stage, backend.url, rule("security-team", subjects={"claims": {"department": "security"}})
    )
    queued_events(aws)
    token = make_token(rsa_key, "RS256", "rsa-1", claims(groups=[], department=department))

    assert effect(decide(token)) == expected


def test_claims_travel_to_the_proxy_so_a_cached_answer_is_re_decided_on_them(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    rsa_key: Any,
    idp: FakeIdp,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    container = rebuild_container(idp, monkeypatch, GATEHOUSE_AUTHORIZER_TTL_SECONDS="300")
    request.addfinalizer(lambda: vars(container).get("upstream") and container.upstream.close())
    publish(
        container,
        backend.url,
        rule("security-team", subjects={"claims": {"department": "security"}}, paths=["/sec/**"]),
    )
    token = make_token(rsa_key, "RS256", "rsa-1", claims(groups=[], department="security"))
    first = proxy_event(token, method="GET", path="/sec/reports", body=None)
    answer = decide(token, path="/sec/reports")
    # TTL > 0: the answer covers the principal's whole permission set, not just this request.
    assert f"{API}/GET/sec/*" in answer["policyDocument"]["Statement"][0]["Resource"]
    context = as_gateway_context(answer)
    first["requestContext"]["authorizer"] = context
    context["decided_for"] = REQUEST_ID
    assert invoke(first).status == 200

    # A later request served from API Gateway's cache: same context, new request id.
    later = proxy_event(token, method="GET", path="/sec/other", request_id="req-2", body=None)
    later["requestContext"]["authorizer"] = dict(context)
    assert invoke(later).status == 200

    # The same cached context, but the policy now names another claim value.
    publish(
        container,
        backend.url,
        rule("it-team", subjects={"claims": {"department": "it"}}, paths=["/sec/**"]),
    )
    again = proxy_event(token, method="GET", path="/sec/other", request_id="req-3", body=None)
    again["requestContext"]["authorizer"] = dict(context)
    assert invoke(again).status == 403
    redecided = [
        event
        for event in queued_events(aws)
        if event["event_type"] == "decision" and event["request"]["id"] == "req-3"
    ]
    assert [event["decision"]["reasons"] for event in redecided] == [["no_matching_rule"]]


# --- break-glass -----------------------------------------------------------------------------

BREAK_GLASS = {"groups": ["oncall"], "require_justification": True}


def test_break_glass_passes_with_a_justification_and_is_flagged_everywhere(
    stage: Container, aws: Resources, backend: DemoBackend, rsa_key: Any
) -> None:
    publish(stage, backend.url, break_glass=BREAK_GLASS)
    queued_events(aws)
    token = make_token(rsa_key, "RS256", "rsa-1", claims(groups=["oncall"]))
    event = proxy_event(token, method="GET", path="/admin/console", body=None)
    set_header(event, "X-Gatehouse-Justification", [JUSTIFICATION])
    set_header(event, "X-Gatehouse-Assertion", None)  # the fixture's forged one

    authorize(event)
    reply = invoke(event)

    assert reply.status == 200
    seen = reply.json()
    forwarded = {name.lower() for name in seen["headers"]}
    assert "x-gatehouse-justification" not in forwarded  # ours, not the upstream's
    decision, response = queued_events(aws)
    for audited in (decision, response):
        assert audited["elevation"] == {
            "grant_id": None,
            "approver": None,
            "justification": JUSTIFICATION,
            "break_glass": True,
        }
    assert decision["decision"]["reasons"] == ["break_glass"]
    assert response["request"]["decision_id"] == decision["event_id"]
    assert response["anomalies"] == []  # the justification header is not a spoof


@pytest.mark.parametrize(
    ("groups", "justification", "reasons"),
    [
        (["oncall"], None, ["no_matching_rule"]),
        (["oncall"], "   ", ["no_matching_rule"]),
        (["engineering"], JUSTIFICATION, ["no_matching_rule"]),
        (["oncall"], "INC-7\x1b[2Kall fine", ["no_matching_rule"]),
        (["oncall"], "INC-7\tdb down", ["no_matching_rule"]),
    ],
    ids=[
        "no justification",
        "blank justification",
        "not on call",
        "terminal escape in the justification",
        "tab in the justification",
    ],
)
def test_break_glass_is_refused_without_justification_or_membership(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    rsa_key: Any,
    groups: list[str],
    justification: str | None,
    reasons: list[str],
) -> None:
    publish(stage, backend.url, break_glass=BREAK_GLASS)
    queued_events(aws)
    token = make_token(rsa_key, "RS256", "rsa-1", claims(groups=groups))
    headers = {"X-Gatehouse-Justification": justification} if justification is not None else {}

    assert effect(decide(token, **headers)) == "Deny"

    [event] = decisions(aws)
    assert event["decision"]["reasons"] == reasons
    assert event["elevation"] is None


def test_a_deny_rule_beats_break_glass(
    stage: Container, aws: Resources, backend: DemoBackend, rsa_key: Any
) -> None:
    publish(
        stage,
        backend.url,
        rule("console-never", "deny", paths=["/admin/**"], actions=["*"]),
        break_glass=BREAK_GLASS,
    )
    queued_events(aws)
    token = make_token(rsa_key, "RS256", "rsa-1", claims(groups=["oncall"]))

    answer = decide(token, **{"X-Gatehouse-Justification": JUSTIFICATION})

    assert effect(answer) == "Deny"
    [event] = decisions(aws)
    assert event["decision"]["reasons"] == ["deny_rule_matched"]


# --- ambiguous paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/api/%2e%2e/admin", "/api/a%2Fb", "/api/./x", "/api/x%00", "/api/%zz"],
    ids=["encoded dot segment", "encoded slash", "dot segment", "NUL", "bad percent"],
)
def test_an_ambiguous_path_is_answered_400_and_audited_never_forwarded(
    stage: Container, aws: Resources, backend: DemoBackend, rsa_key: Any, path: str
) -> None:
    token = make_token(rsa_key, "RS256", "rsa-1")
    event = proxy_event(token, method="GET", path=path, body=None)
    backend_requests_before = backend.requests_seen

    context = authorize(event)  # asserts the answer lets exactly this request through
    reply = invoke(event)

    assert context["refusal"] == "ambiguous_path"
    assert reply.status == 400
    assert reply.json()["request_id"] == REQUEST_ID
    assert backend.requests_seen == backend_requests_before
    decision, response = queued_events(aws)
    assert decision["decision"]["outcome"] == "deny"
    assert decision["decision"]["reasons"] == ["ambiguous_path"]
    assert response["outcome"]["status"] == 400
    assert response["outcome"]["error"] == "ambiguous_path"
    assert response["decision"]["outcome"] == "deny"
    assert response["request"]["decision_id"] == decision["event_id"]


def test_the_proxy_refuses_an_ambiguous_path_even_if_the_authorizer_allowed_it(
    stage: Container, aws: Resources, backend: DemoBackend, rsa_key: Any
) -> None:
    token = make_token(rsa_key, "RS256", "rsa-1")
    clean = proxy_event(token, method="GET", path="/api/projects/42", body=None)
    answer_context = authorize(clean)
    # The context of a clean request, attached to a request for an ambiguous path.
    tampered = proxy_event(token, method="GET", path="/api/%2e%2e/admin", body=None)
    tampered["requestContext"]["authorizer"] = dict(answer_context)
    queued_events(aws)

    reply = invoke(tampered)

    assert reply.status == 400
    [response] = queued_events(aws)
    assert response["outcome"]["error"] == "ambiguous_path"


def test_a_huge_justification_is_capped_and_still_reaches_the_proxy_intact(
    stage: Container, aws: Resources, backend: DemoBackend, rsa_key: Any
) -> None:
    publish(stage, backend.url, break_glass=BREAK_GLASS)
    queued_events(aws)
    token = make_token(rsa_key, "RS256", "rsa-1", claims(groups=["oncall"]))
    event = proxy_event(token, method="GET", path="/admin/console", body=None)
    set_header(event, "X-Gatehouse-Justification", ["INC-1 " + "x" * 9000])
    set_header(event, "X-Gatehouse-Assertion", None)

    authorize(event)
    reply = invoke(event)

    assert reply.status == 200
    for audited in queued_events(aws):
        justification = audited["elevation"]["justification"]
        assert justification.startswith("INC-1 xxx")
        assert justification.endswith("...[truncated]")
        assert len(justification) == 500
